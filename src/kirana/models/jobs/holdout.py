"""Quality of a job's recommender on a last-order holdout, for the run registry.

The protocol of `kirana.models.evaluation`: each user with two or more orders has their last
order held out, the model is refitted on the rest and asked for its top 10.

* buy again is judged like next-basket models (Recall/NDCG/hit@10 on the whole held-out
  basket), next to P-TopFreq, the baseline it must beat;
* recommended for you only recommends items the user never bought, so it is judged on the
  *new* items of the held-out basket (users whose last order had at least one), next to
  the best sellers the user never bought (G-TopFreq).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kirana.models.evaluation import evaluate_holdout, hold_out_last, ranking_metrics
from kirana.models.recommenders import Baskets, GTopFreq, PTopFreq, Recommender

K = 10


def buy_again_metrics(model: Callable[[], Recommender], baskets: Baskets) -> dict[str, float]:
    """Holdout Recall/NDCG/hit@10 of the model and of the P-TopFreq baseline."""
    holdout = hold_out_last(baskets)
    if len(holdout.user_ids) == 0:
        return {"holdout_users": 0}
    ours, baseline = evaluate_holdout(
        {"model": model(), "baseline": PTopFreq()}, holdout, (K,), breakdown=False
    )
    out: dict[str, float] = {"holdout_users": len(holdout.user_ids)}
    for name in (f"recall@{K}", f"ndcg@{K}", f"hit@{K}"):
        out[f"holdout_{name}"] = ours[name]
        out[f"baseline_ptopfreq_{name}"] = baseline[name]
    return out


def discovery_metrics(model: Callable[[], Recommender], baskets: Baskets) -> dict[str, float]:
    """Holdout Recall/NDCG/hit@10 on the held-out items the user had never bought, for the
    model and for the best sellers the user never bought (G-TopFreq), its baseline."""
    holdout = hold_out_last(baskets)
    new = ~holdout.repeat
    users = np.unique(holdout.rows[new])
    if len(users) == 0:
        return {"holdout_users": 0}
    # (user row, item) pairs that count as hits
    position = np.full(len(holdout.user_ids), -1)
    position[users] = np.arange(len(users))
    relevant = {
        (int(position[r]), str(i))
        for r, i in zip(holdout.rows[new], holdout.items[new], strict=True)
    }
    sizes = np.bincount(position[holdout.rows[new]], minlength=len(users))
    out: dict[str, float] = {"holdout_users": len(users)}
    for prefix, make in (("holdout_new", model), ("baseline_gtopfreq_new", GTopFreq)):
        fitted = make().fit(holdout.train)
        recs = fitted.recommend(holdout.user_ids[users], K, exclude_purchased=True)
        n, width = recs.item_ids.shape
        hits = (
            np.array(
                [(row, str(item)) in relevant for row in range(n) for item in recs.item_ids[row]],
                bool,
            ).reshape(n, width)
            & recs.valid
        )
        metrics = ranking_metrics(hits, sizes, (K,))
        out.update({f"{prefix}_{name}": float(v.mean()) for name, v in metrics.items()})
    return out
