"""Association rules against support, confidence and lift computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kirana.models.recommenders import Associations, Baskets, Recommender

# Ten baskets (one user each). Counts: N = 10, n_A = 6, n_B = 5, n_C = 5, n_D = 3, n_E = 1;
# pairs: AB 5, AC 3, BC 2, AD 1, BD 1, CD 1.
BASKETS = [
    "ABC",
    "AB",
    "ABD",
    "AC",
    "E",
    "CD",
    "AB",
    "D",
    "C",
    "ABC",
]


def baskets() -> Baskets:
    rows = [(b, item) for b, items in enumerate(BASKETS) for item in items]
    users = [b for b, _ in rows]
    return Baskets.from_arrays(users, users, [item for _, item in rows])


@pytest.fixture(scope="module")
def model() -> Associations:
    return Associations(min_count=2).fit(baskets())


def test_pairs_by_hand(model) -> None:
    got = model.pairs().set_index(["antecedent", "consequent"]).sort_index()
    expected = pd.DataFrame(
        [  # (i, j, n_ij, support, confidence i -> j, lift)
            ("A", "B", 5, 5 / 10, 5 / 6, 5 * 10 / (6 * 5)),
            ("A", "C", 3, 3 / 10, 3 / 6, 3 * 10 / (6 * 5)),
            ("B", "A", 5, 5 / 10, 5 / 5, 5 * 10 / (5 * 6)),
            ("B", "C", 2, 2 / 10, 2 / 5, 2 * 10 / (5 * 5)),
            ("C", "A", 3, 3 / 10, 3 / 5, 3 * 10 / (5 * 6)),
            ("C", "B", 2, 2 / 10, 2 / 5, 2 * 10 / (5 * 5)),
        ],  # every pair with D or E occurs once: below min_count
        columns=["antecedent", "consequent", "count", "support", "confidence", "lift"],
    ).set_index(["antecedent", "consequent"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_top_k_per_item_by_lift_and_by_confidence(model) -> None:
    top1 = model.pairs(k=1)
    assert dict(zip(top1.antecedent, top1.consequent, strict=True)) == {
        "A": "B",
        "B": "A",
        "C": "A",
    }
    assert model.similar_items(["A", "C", "D"], k=2).items(0) == ["B", "C"]
    # C -> A and C -> B: lift 1.0 vs 0.8, confidence 0.6 vs 0.4; D has no rule left
    sims = model.similar_items(["C", "D"], k=2, by="confidence")
    assert sims.items(0) == ["A", "B"] and sims.items(1) == []
    np.testing.assert_allclose(sims.scores[0], [0.6, 0.4])


def test_thresholds() -> None:
    b = baskets()
    assert len(Associations(min_count=1).fit(b).pairs()) == 12  # all six pairs, both ways
    assert set(Associations(min_count=1, min_support=0.3).fit(b).pairs()["count"]) == {5, 3}
    conf = Associations(min_count=1, min_confidence=0.9).fit(b).pairs()
    assert list(zip(conf.antecedent, conf.consequent, strict=True)) == [("B", "A")]


def test_recommend_fires_the_strongest_rule(model) -> None:
    # user 7 bought only D (no rule), user 8 only C: A (confidence 0.6) then B (0.4)
    recs = model.recommend([8], k=2, exclude_purchased=True)
    assert recs.items(0) == ["A", "B"]
    np.testing.assert_allclose(recs.scores[0], [0.6, 0.4])


def test_round_trip(model, tmp_path) -> None:
    loaded = Recommender.load(model.save(tmp_path / "assoc"))
    pd.testing.assert_frame_equal(loaded.pairs(), model.pairs())


def test_vectorised_on_the_instacart_sample() -> None:
    from kirana.demo.instacart import load_sample

    b = Baskets.from_histories(load_sample().users[:100])
    m = Associations(min_count=3).fit(b)
    pairs = m.pairs()
    assert (pairs["count"] >= 3).all() and len(pairs) > 0
    # spot-check one rule against a direct count over the baskets
    row = pairs.iloc[len(pairs) // 2]
    sets = [set(b.basket(i).tolist()) for i in range(b.n_baskets)]
    n_i = sum(row.antecedent in s for s in sets)
    n_ij = sum(row.antecedent in s and row.consequent in s for s in sets)
    assert row["count"] == n_ij and row.confidence == pytest.approx(n_ij / n_i)
