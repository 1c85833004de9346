"""The hold-out protocol, the evaluation loop and the orders-file entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kirana.demo.instacart import load_sample, sample_path
from kirana.models.evaluation import (
    HoldOut,
    default_models,
    evaluate,
    evaluate_file,
    evaluate_holdout,
    format_table,
    hold_out_last,
    tune,
)
from kirana.models.recommenders import (
    EASE,
    TIFUKNN,
    Baskets,
    Blend,
    GTopFreq,
    PTopFreq,
    Recommender,
)

SLICE = 60


@pytest.fixture(scope="module")
def instacart() -> Baskets:
    """The first 60 users of the Instacart sample (a ~10 % slice: keeps the suite fast)."""
    return Baskets.from_histories(load_sample().users[:SLICE])


@pytest.fixture(scope="module")
def holdout(instacart) -> HoldOut:
    return hold_out_last(instacart)


class Oracle(Recommender):
    """Knows the held-out baskets: scores exactly the test items (to check the metric plumbing)."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers

    @property
    def params(self) -> dict:
        return {}

    def _fit(self, baskets: Baskets) -> None:
        pass

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items), np.float32)
        for row, u in enumerate(users):
            idx = self.item_index(self.answers[self.user_ids[u]])
            out[row, idx[idx >= 0]] = 1
        return out


def test_hold_out_keeps_each_users_last_order(instacart, holdout) -> None:
    users = load_sample().users[:SLICE]
    assert holdout.user_ids.tolist() == [u.user_id for u in users]
    for i, user in enumerate(users):
        test = holdout.items[holdout.ptr[i] : holdout.ptr[i + 1]]
        assert test.tolist() == list(user.orders[-1].product_ids)
    assert holdout.train.n_baskets == instacart.n_baskets - SLICE
    assert not set(holdout.train.order_ids) & {u.orders[-1].order_id for u in users}
    # the training vocabulary knows nothing that only the test baskets contain
    train_items = {p for u in users for o in u.orders[:-1] for p in o.product_ids}
    assert set(holdout.train.item_ids.tolist()) == train_items


def test_repeat_flags(holdout) -> None:
    users = load_sample().users[:SLICE]
    expected = [
        p in {q for o in u.orders[:-1] for q in o.product_ids}
        for u in users
        for p in u.orders[-1].product_ids
    ]
    assert holdout.repeat.tolist() == expected


def test_an_oracle_scores_perfectly(holdout) -> None:
    answers = {
        u: holdout.items[holdout.ptr[i] : holdout.ptr[i + 1]].tolist()
        for i, u in enumerate(holdout.user_ids.tolist())
    }
    (row,) = evaluate_holdout({"oracle": Oracle(answers)}, holdout, ks=(10, 100))
    known = holdout.train.item_index(holdout.items) >= 0  # unseen items cannot be recommended
    n_known = np.bincount(holdout.rows, weights=known, minlength=len(holdout.user_ids))
    assert row["recall@100"] == pytest.approx(np.mean(n_known / holdout.sizes))
    assert row["hit@100"] == pytest.approx(np.mean(n_known > 0))
    assert row["recall_repeat@100"] == pytest.approx(1.0)


def test_instacart_slice_tifu_beats_global_popularity(holdout) -> None:
    models = {"G-TopFreq": GTopFreq(), "P-TopFreq": PTopFreq(), "TIFU-KNN": TIFUKNN()}
    results = {r["model"]: r for r in evaluate_holdout(models, holdout, ks=(10, 20))}
    for r in results.values():
        assert r["users"] == SLICE
        for key in ("recall@10", "ndcg@10", "hit@10", "recall@20", "ndcg@20", "hit@20"):
            assert 0 <= r[key] <= 1
        assert r["fit_seconds"] >= 0 and r["recommend_seconds"] >= 0
    tifu, top = results["TIFU-KNN"], results["G-TopFreq"]
    assert tifu["recall@10"] >= top["recall@10"] and tifu["ndcg@10"] >= top["ndcg@10"]
    assert "| TIFU-KNN |" in format_table(list(results.values()), ["recall@10"])


def test_default_models_run_on_the_slice(instacart) -> None:
    results = evaluate(default_models(), instacart, ks=(10,), breakdown=False)
    assert [r["model"] for r in results] == list(default_models())
    assert all(0 <= r["ndcg@10"] <= 1 for r in results)


def test_tune_returns_the_best_validation_point(holdout) -> None:
    best, runs = tune(TIFUKNN, {"alpha": [0.6, 1.0], "n_neighbors": [20]}, holdout.train)
    assert len(runs) == 2 and best in [r["params"] for r in runs]
    assert (
        max(r["ndcg@10"] for r in runs) == next(r for r in runs if r["params"] == best)["ndcg@10"]
    )
    # validation = each user's last *training* basket: the test baskets are never used
    assert all(r["users"] == SLICE for r in runs)


def test_blend_with_prefitted_parts_matches_refitting(holdout) -> None:
    parts = [TIFUKNN(n_neighbors=20).fit(holdout.train), EASE(l2=30).fit(holdout.train)]
    prefitted = Blend(parts, [1.0, 0.2], refit=False)
    fresh = Blend([TIFUKNN(n_neighbors=20), EASE(l2=30)], [1.0, 0.2])
    a, b = evaluate_holdout({"a": prefitted, "b": fresh}, holdout, ks=(10,))
    assert a["ndcg@10"] == pytest.approx(b["ndcg@10"])
    with pytest.raises(ValueError, match="different baskets"):
        Blend([GTopFreq().fit(holdout.train)], [1.0], refit=False).fit(
            hold_out_last(holdout.train).train
        )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_evaluate_file_with_custom_columns(fmt, instacart, tmp_path: Path) -> None:
    frame = instacart.to_frame().rename(
        columns={
            "user_id": "customer",
            "order_id": "basket",
            "product_id": "sku",
            "order_number": "n",
        }
    )
    frame = frame.sample(frac=1.0, random_state=0)  # file order must not matter
    path = tmp_path / f"orders.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
    models = {"P-TopFreq": PTopFreq(), "TIFU-KNN": TIFUKNN()}
    got = evaluate_file(
        path, models, user_col="customer", order_col="basket", item_col="sku", sequence_col="n"
    )
    want = evaluate({"P-TopFreq": PTopFreq(), "TIFU-KNN": TIFUKNN()}, instacart)
    for g, w in zip(got, want, strict=True):
        assert g["recall@10"] == pytest.approx(w["recall@10"])
        assert g["ndcg@20"] == pytest.approx(w["ndcg@20"])


def test_evaluate_file_reads_instacart_columns_by_default(tmp_path: Path) -> None:
    frame = pd.read_csv(sample_path(), nrows=3000)
    path = tmp_path / "sample.csv"
    frame.to_csv(path, index=False)
    (row,) = evaluate_file(path, {"G-TopFreq": GTopFreq()}, ks=(5,))
    assert row["users"] == frame.groupby("user_id").order_number.nunique().gt(1).sum()
