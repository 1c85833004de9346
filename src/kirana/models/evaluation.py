"""Offline next-basket evaluation: hold out each user's last order, rank, score the ranking.

Protocol (as in Li et al., "A Next Basket Recommendation Reality Check", TOIS 2023): every
user with at least two orders has their LAST order held out as the test basket; models are
fitted on all earlier orders (users with one order stay in training only), asked for their
top-k list per test user, and the metrics are averaged over test users:

* ``recall@k = |top-k ∩ basket| / |basket|`` — the next-basket convention (not ``/ min(k,
  |basket|)``), so a basket larger than k caps recall below 1;
* ``ndcg@k`` with binary relevance, ``DCG = sum_hits 1 / log2(rank + 1)`` over the top k,
  normalised by the DCG of a perfect list (``min(k, |basket|)`` hits at the top);
* ``hit@k`` = 1 if at least one item of the basket is in the top k; ``precision@k = hits / k``.

The breakdown splits each test basket into *repeat* items (bought by the user in training) and
*new* ones: ``recall_repeat@k`` / ``recall_new@k`` average over users having such items, and
``repeat_share@k`` is the share of the top k that the user bought before. Hyper-parameters
are tuned with `tune` on a validation split — the last training order, i.e. the second-to-last
order — never on the test baskets.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from kirana.models.recommenders import (
    ALS,
    EASE,
    TIFUKNN,
    Baskets,
    Blend,
    GTopFreq,
    PTopFreq,
    Recommendations,
    Recommender,
)

__all__ = [
    "HoldOut",
    "default_models",
    "evaluate",
    "evaluate_file",
    "evaluate_holdout",
    "format_table",
    "hit_rate_at_k",
    "hold_out_last",
    "ndcg_at_k",
    "ranking_metrics",
    "recall_at_k",
    "tune",
]


# -- metrics for one user (the reference definitions) ----------------------------------------
def _hits(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> tuple[list[bool], int]:
    rel = set(relevant)
    if not rel:
        raise ValueError("the relevant set (test basket) is empty")
    seen: set[Any] = set()
    flags = []
    for item in list(ranked)[:k]:
        flags.append(item in rel and item not in seen)
        seen.add(item)
    return flags, len(rel)


def recall_at_k(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """|top-k ∩ relevant| / |relevant| (a repeated recommendation counts once)."""
    flags, n = _hits(ranked, relevant, k)
    return sum(flags) / n


def ndcg_at_k(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """Binary-relevance NDCG: hits at rank r (1-based) earn 1 / log2(r + 1), over the ideal."""
    flags, n = _hits(ranked, relevant, k)
    dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(flags) if hit)
    return dcg / sum(1 / math.log2(r + 2) for r in range(min(n, k)))


def hit_rate_at_k(ranked: Sequence[Any], relevant: Iterable[Any], k: int) -> float:
    """1.0 if any relevant item is in the top k, else 0.0."""
    return float(any(_hits(ranked, relevant, k)[0]))


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int]
) -> dict[str, np.ndarray]:
    """Per-user recall/ndcg/hit/precision@k from a (users x ranks) boolean hit matrix."""
    hits = np.asarray(hits, bool)
    n_relevant = np.asarray(n_relevant)
    width = max(max(ks), hits.shape[1])
    hits = np.pad(hits, ((0, 0), (0, width - hits.shape[1])))
    discount = 1 / np.log2(np.arange(width) + 2)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = hits[:, :k]
        n_hits = h.sum(axis=1)
        out[f"recall@{k}"] = n_hits / n_relevant
        out[f"ndcg@{k}"] = (h * discount[:k]).sum(axis=1) / ideal[np.minimum(n_relevant, k)]
        out[f"hit@{k}"] = (n_hits > 0).astype(float)
        out[f"precision@{k}"] = n_hits / k
    return out


# -- hold-out ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class HoldOut:
    """Training baskets plus one held-out basket per test user.

    The held-out items of test user ``i`` (``user_ids[i]``) are ``items[ptr[i]:ptr[i + 1]]``.
    """

    train: Baskets
    user_ids: np.ndarray
    ptr: np.ndarray
    items: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.ptr)

    @cached_property
    def rows(self) -> np.ndarray:
        """Test-user row of every held-out item."""
        return np.repeat(np.arange(len(self.user_ids)), self.sizes)

    @cached_property
    def _history_keys(self) -> np.ndarray:
        coo = self.train.user_item_matrix().tocoo()
        return coo.row.astype(np.int64) * self.train.n_items + coo.col

    def bought_before(self, rows: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Whether test user ``rows[i]`` bought ``item_ids[i]`` in the training baskets."""
        users = self.train.user_index(self.user_ids)[rows]
        items = self.train.item_index(item_ids)
        keys = users * np.int64(self.train.n_items) + items
        return np.isin(keys, self._history_keys) & (users >= 0) & (items >= 0)

    @cached_property
    def repeat(self) -> np.ndarray:
        """Whether each held-out item is a repeat purchase."""
        return self.bought_before(self.rows, self.items)


def hold_out_last(baskets: Baskets, min_train_baskets: int = 1) -> HoldOut:
    """Hold out the last basket of every user with more than ``min_train_baskets`` baskets."""
    last = baskets.last_baskets(min_baskets=min_train_baskets + 1)
    test = np.zeros(baskets.n_baskets, bool)
    test[last] = True
    sizes = np.diff(baskets.basket_ptr)
    per_row = np.repeat(test, sizes)
    ptr = np.concatenate([[0], np.cumsum(sizes[last])])
    return HoldOut(
        train=baskets.take(~test),
        user_ids=baskets.user_ids[baskets.basket_user[last]],
        ptr=ptr,
        items=baskets.item_ids[baskets.items[per_row]],
    )


def _hit_matrix(recs: Recommendations, holdout: HoldOut) -> np.ndarray:
    """(test users x k) booleans: is the recommended item in the user's held-out basket."""
    n, k = recs.item_ids.shape
    _, codes = np.unique(
        np.concatenate([recs.item_ids.ravel(), holdout.items]), return_inverse=True
    )
    m = np.int64(codes.max() + 1)
    rec_keys = np.repeat(np.arange(n), k) * m + codes[: n * k]
    test_keys = holdout.rows * m + codes[n * k :]
    return np.isin(rec_keys, test_keys).reshape(n, k) & recs.valid


# -- evaluation --------------------------------------------------------------------------------
def evaluate_holdout(
    models: Mapping[str, Recommender],
    holdout: HoldOut,
    ks: Sequence[int] = (10, 20),
    *,
    fit: bool = True,
    breakdown: bool = True,
    per_user: bool = False,
) -> list[dict[str, Any]]:
    """Fit (unless ``fit=False``) and score each model on ``holdout``; one dict per model."""
    results = []
    width = max(ks)
    for name, model in models.items():
        started = time.perf_counter()
        if fit:
            model.fit(holdout.train)
        fitted = time.perf_counter()
        recs = model.recommend(holdout.user_ids, width, exclude_purchased=False)
        done = time.perf_counter()
        hits = _hit_matrix(recs, holdout)
        metrics = ranking_metrics(hits, holdout.sizes, ks)
        row: dict[str, Any] = {"model": name, "users": len(holdout.user_ids)}
        row.update({m: float(v.mean()) for m, v in metrics.items()})
        if breakdown:
            metrics.update(_breakdown(recs, hits, holdout, ks))
            with warnings.catch_warnings():  # all-NaN: no user had a repeat (or a new) item
                warnings.simplefilter("ignore", RuntimeWarning)
                row.update({m: float(np.nanmean(metrics[m])) for m in metrics if m not in row})
        row["fit_seconds"] = round(fitted - started, 3) if fit else None
        row["recommend_seconds"] = round(done - fitted, 3)
        row["params"] = model.params
        if per_user:
            row["per_user"] = metrics
        results.append(row)
    return results


def _breakdown(
    recs: Recommendations, hits: np.ndarray, holdout: HoldOut, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    n, width = hits.shape
    rec_repeat = holdout.bought_before(np.repeat(np.arange(n), width), recs.item_ids.ravel())
    rec_repeat = rec_repeat.reshape(n, width) & recs.valid
    n_repeat = np.bincount(holdout.rows, weights=holdout.repeat, minlength=n)
    n_new = holdout.sizes - n_repeat
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ks:
            repeat_hits = (hits & rec_repeat)[:, :k].sum(axis=1)
            new_hits = (hits & ~rec_repeat)[:, :k].sum(axis=1)
            out[f"recall_repeat@{k}"] = np.where(n_repeat > 0, repeat_hits / n_repeat, np.nan)
            out[f"recall_new@{k}"] = np.where(n_new > 0, new_hits / n_new, np.nan)
            out[f"repeat_share@{k}"] = rec_repeat[:, :k].sum(axis=1) / min(k, width)
    return out


def evaluate(
    models: Mapping[str, Recommender], baskets: Baskets, ks: Sequence[int] = (10, 20), **kw: Any
) -> list[dict[str, Any]]:
    """Hold out each user's last basket, fit every model on the rest, and score them."""
    return evaluate_holdout(models, hold_out_last(baskets), ks, **kw)


def evaluate_file(
    path: str | Path,
    models: Mapping[str, Recommender] | None = None,
    *,
    user_col: str = "user_id",
    order_col: str = "order_id",
    item_col: str = "product_id",
    sequence_col: str | None = "order_number",
    ks: Sequence[int] = (10, 20),
) -> list[dict[str, Any]]:
    """`evaluate` on a CSV or Parquet orders file, one row per (user, order, item).

    ``sequence_col`` (an order number or a timestamp) orders each user's baskets; with None
    the order id does.
    """
    columns = {"user_col": user_col, "order_col": order_col, "item_col": item_col}
    baskets = Baskets.read(path, **columns, sequence_col=sequence_col)
    return evaluate(models if models is not None else default_models(), baskets, ks)


def tune(
    factory: Callable[..., Recommender],
    grid: Mapping[str, Sequence[Any]],
    train: Baskets,
    *,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10,),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid search on the validation split of ``train`` (each user's last training basket).

    ``train`` must not contain the test baskets. Returns the best parameters (first best on
    ties, in grid order) and every grid point's validation metrics.
    """
    holdout = hold_out_last(train)
    results = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        row = evaluate_holdout({"candidate": factory(**params)}, holdout, ks, breakdown=False)[0]
        results.append({**row, "params": params})
    best = max(results, key=lambda r: r[metric])
    return best["params"], results


def default_models() -> dict[str, Recommender]:
    """The compared models, with the hyper-parameters tuned on the validation split of the
    Instacart sample (docs/models.md; regenerate with ``benchmarks/recommenders.py``)."""
    tifu = {"n_neighbors": 10, "alpha": 0.8, "group_size": 7, "within_decay": 0.8}
    ease = {"l2": 10.0, "max_items": 8000, "binary": False}
    return {
        "G-TopFreq": GTopFreq(),
        "P-TopFreq": PTopFreq(),
        "ALS": ALS(factors=256, regularization=10.0, alpha=0.25, weighting="bm25"),
        "EASE": EASE(**ease),
        "TIFU-KNN": TIFUKNN(**tifu, group_decay=0.4),
        "TIFU-KNN + EASE": Blend([TIFUKNN(**tifu, group_decay=0.4), EASE(**ease)], [1.0, 0.02]),
    }


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (a metric whose denominator was 0) as None,
    so that it encodes as JSON: ``json.dumps`` would write a bare ``NaN``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def metric_columns(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every metric the results carry (``name@k``), by name then k, then the timings."""
    names = dict.fromkeys(c for row in results for c in row if "@" in c)
    ordered = sorted(names, key=lambda c: (c.split("@")[0], int(c.split("@")[1])))
    timings = [c for c in ("fit_seconds", "recommend_seconds") if any(c in r for r in results)]
    return ordered + timings


def format_table(results: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of ``results`` (floats to 4 decimals; seconds as given)."""
    head = ["model", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in results:
        cells = [str(row["model"])]
        for c in columns:
            v = row.get(c)
            if isinstance(v, float) and not math.isfinite(v):
                cells.append("-")
            else:
                cells.append(f"{v:.4f}" if isinstance(v, float) and "seconds" not in c else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
