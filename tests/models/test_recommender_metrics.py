"""Ranking metrics on hand-computed cases, and their properties under hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirana.models.evaluation import hit_rate_at_k, ndcg_at_k, ranking_metrics, recall_at_k
from kirana.models.recommenders import top_k


def test_recall_by_hand() -> None:
    ranked = ["a", "x", "b", "y"]
    assert recall_at_k(ranked, {"a", "b", "c"}, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"a", "b", "c"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"a", "b", "c"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, {"z"}, 4) == 0
    # the next-basket convention: |hits| / |basket|, even when the basket is larger than k
    assert recall_at_k(["a", "b"], set("abcde"), 2) == pytest.approx(2 / 5)


def test_ndcg_by_hand() -> None:
    # hits at ranks 1 and 3 of 4, three relevant items: DCG = 1 + 1/log2(4) = 1.5,
    # ideal DCG = 1 + 1/log2(3) + 1/log2(4)
    ranked = ["a", "x", "b", "y"]
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(ranked, {"a", "b", "c"}, 4) == pytest.approx(1.5 / ideal)
    # one relevant item at rank 2: 1/log2(3), ideal 1
    assert ndcg_at_k(["x", "a"], {"a"}, 5) == pytest.approx(1 / math.log2(3))
    # more relevant items than k: the ideal list is k hits long
    assert ndcg_at_k(["a", "b"], set("abcde"), 2) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], set("abcde"), 2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )


def test_hit_rate_and_duplicates_count_once() -> None:
    assert hit_rate_at_k(["x", "a"], {"a"}, 1) == 0
    assert hit_rate_at_k(["x", "a"], {"a"}, 2) == 1
    assert recall_at_k(["a", "a", "a"], {"a", "b"}, 3) == pytest.approx(1 / 2)
    with pytest.raises(ValueError):
        recall_at_k(["a"], set(), 1)


def test_vectorised_metrics_by_hand() -> None:
    hits = np.array([[True, False, True, False], [False, False, False, False]])
    m = ranking_metrics(hits, np.array([3, 2]), ks=(2, 4))
    np.testing.assert_allclose(m["recall@2"], [1 / 3, 0])
    np.testing.assert_allclose(m["recall@4"], [2 / 3, 0])
    np.testing.assert_allclose(m["ndcg@4"], [1.5 / (1 + 1 / math.log2(3) + 0.5), 0])
    np.testing.assert_allclose(m["hit@2"], [1, 0])
    np.testing.assert_allclose(m["precision@4"], [0.5, 0])


def test_top_k_breaks_ties_by_lowest_index() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [-np.inf, 2.0, -np.inf, 2.0, 2.0]])
    idx, vals = top_k(scores, 2)
    assert idx.tolist() == [[1, 2], [1, 3]]
    idx, vals = top_k(scores, 5)
    assert idx.tolist() == [[1, 2, 4, 0, 3], [1, 3, 4, 0, 2]]
    assert np.isneginf(vals[1, 3:]).all()


# -- properties ------------------------------------------------------------------------------
ITEMS = st.integers(0, 30)


@st.composite
def ranking_case(draw):
    ranked = draw(st.lists(ITEMS, min_size=1, max_size=25, unique=True))
    relevant = draw(st.sets(ITEMS, min_size=1, max_size=12))
    k = draw(st.integers(1, 25))
    return ranked, relevant, k


@given(ranking_case())
def test_metrics_are_in_unit_interval_and_agree_with_vectorised(case) -> None:
    ranked, relevant, k = case
    single = {
        "recall": recall_at_k(ranked, relevant, k),
        "ndcg": ndcg_at_k(ranked, relevant, k),
        "hit": hit_rate_at_k(ranked, relevant, k),
    }
    assert all(0 <= v <= 1 for v in single.values())
    hits = np.array([[item in relevant for item in ranked]])
    vec = ranking_metrics(hits, np.array([len(relevant)]), ks=(k,))
    for name, value in single.items():
        assert vec[f"{name}@{k}"][0] == pytest.approx(value)


@given(st.sets(ITEMS, min_size=1, max_size=12), st.lists(ITEMS, max_size=10, unique=True))
def test_a_perfect_ranking_scores_one(relevant, others) -> None:
    ranked = sorted(relevant) + [i for i in others if i not in relevant]
    k = len(relevant)
    assert recall_at_k(ranked, relevant, k) == pytest.approx(1)
    assert ndcg_at_k(ranked, relevant, k) == pytest.approx(1)
    assert hit_rate_at_k(ranked, relevant, k) == 1
    assert ndcg_at_k(ranked, relevant, max(1, k - 3)) == pytest.approx(1)  # also when k < |R|


@given(ranking_case(), st.randoms(use_true_random=False))
def test_permuting_non_relevant_items_changes_nothing(case, rnd) -> None:
    ranked, relevant, k = case
    slots = [i for i, item in enumerate(ranked) if item not in relevant]
    shuffled_items = [ranked[i] for i in slots]
    rnd.shuffle(shuffled_items)
    permuted = list(ranked)
    for slot, item in zip(slots, shuffled_items, strict=True):
        permuted[slot] = item
    for metric in (recall_at_k, ndcg_at_k, hit_rate_at_k):
        assert metric(permuted, relevant, k) == metric(ranked, relevant, k)


@given(ranking_case())
def test_moving_a_hit_up_never_lowers_ndcg(case) -> None:
    ranked, relevant, k = case
    hits = [i for i, item in enumerate(ranked[:k]) if item in relevant]
    if not hits or hits[-1] == 0:
        return
    i = hits[-1]
    better = list(ranked)
    better[i - 1], better[i] = better[i], better[i - 1]
    assert ndcg_at_k(better, relevant, k) >= ndcg_at_k(ranked, relevant, k) - 1e-12


@given(
    st.lists(st.lists(st.integers(-3, 3), min_size=6, max_size=6), min_size=1, max_size=5),
    st.integers(1, 6),
)
def test_top_k_matches_a_stable_full_sort(rows, k) -> None:
    scores = np.array(rows, dtype=np.float32)
    idx, vals = top_k(scores, k)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, expected, axis=1))
