"""SRM agrees with scipy's chi-square; Holm and BH agree with statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from kirana.experiments.stats import (
    StatsInputError,
    adjust,
    benjamini_hochberg,
    bonferroni,
    holm,
    srm_test,
)
from kirana.experiments.stats.corrections import comparison_alpha


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ([5000, 5100], None),
        ([10_000, 10_400], [0.5, 0.5]),
        ([2000, 1000, 1010], [2, 1, 1]),
        ([300, 700], [0.3, 0.7]),
    ],
)
def test_srm_matches_scipy_chisquare(counts: list[int], weights: list[float] | None) -> None:
    res = srm_test(counts, weights)
    w = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=float)
    expected = np.sum(counts) * w / w.sum()
    ref = sps.chisquare(counts, expected)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.expected == pytest.approx(tuple(expected))


def test_srm_flags_a_mismatch_below_the_threshold() -> None:
    assert srm_test([10_000, 10_500]).mismatch  # p ~ 4e-4
    assert not srm_test([10_000, 10_100]).mismatch
    assert not srm_test([10_000, 10_500], threshold=1e-4).mismatch


def test_srm_refuses_bad_weights() -> None:
    with pytest.raises(StatsInputError, match=r"^weights: expected 2 weights"):
        srm_test([10, 10], [1, 1, 1])
    with pytest.raises(StatsInputError, match=r"^weights: must all be positive"):
        srm_test([10, 10], [1, 0])


P_LISTS = [
    [0.01, 0.04, 0.03, 0.5],
    [0.2, 0.2, 0.2, 0.001, 0.049],  # ties
    np.random.default_rng(40).uniform(size=30).tolist(),
    np.random.default_rng(41).beta(0.3, 3.0, size=24).tolist(),  # mostly small
    [1.0, 0.0, 0.5],
]


@pytest.mark.parametrize("p", P_LISTS)
def test_holm_and_bh_match_statsmodels(p: list[float]) -> None:
    # (few cases: multipletests runs gc.collect() on every call, ~50 ms each)
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(
        benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12
    )
    np.testing.assert_allclose(bonferroni(p), multipletests(p, method="bonferroni")[1])


def _holm_by_definition(p: list[float]) -> list[float]:
    """max over the not-larger p's of min(1, (m - rank + 1) p): O(m^2), no sorting tricks."""
    m = len(p)
    ranked = sorted(range(m), key=lambda i: (p[i], i))
    rank = {i: r for r, i in enumerate(ranked, start=1)}
    step = {i: min(1.0, (m - rank[i] + 1) * p[i]) for i in range(m)}
    return [max(step[j] for j in range(m) if rank[j] <= rank[i]) for i in range(m)]


def _bh_by_definition(p: list[float]) -> list[float]:
    m = len(p)
    ranked = sorted(range(m), key=lambda i: (p[i], i))
    rank = {i: r for r, i in enumerate(ranked, start=1)}
    return [
        min(min(1.0, m * p[j] / rank[j]) for j in range(m) if rank[j] >= rank[i]) for i in range(m)
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30))
def test_holm_and_bh_match_their_definitions(p: list[float]) -> None:
    np.testing.assert_allclose(holm(p), _holm_by_definition(p), rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(p), _bh_by_definition(p), rtol=1e-12)
    assert np.all(holm(p) >= np.asarray(p)) and np.all(benjamini_hochberg(p) <= holm(p) + 1e-15)


def test_adjust_dispatches_and_refuses_non_probabilities() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    assert adjust(p, "none").tolist() == p
    assert adjust(p, "holm").tolist() == holm(p).tolist()
    assert adjust(p, "bh").tolist() == benjamini_hochberg(p).tolist()
    with pytest.raises(StatsInputError, match=r"^p_values: "):
        adjust([0.1, 1.2], "holm")
    with pytest.raises(ValueError, match="sidak"):
        adjust(p, "sidak")


def test_comparison_alpha_reads_the_correction_factor() -> None:
    p = np.array([0.001, 0.02, 0.3, 0.9])
    for method in ("none", "holm", "bonferroni", "bh"):
        adjusted = adjust(p, method)
        levels = [comparison_alpha(0.05, pi, pa, 4) for pi, pa in zip(p, adjusted, strict=True)]
        # the level is below alpha exactly as much as the correction raised the p-value
        assert [pi < lv for pi, lv in zip(p, levels, strict=True)] == list(adjusted < 0.05)
    assert comparison_alpha(0.05, 0.01, 0.04, 4) == pytest.approx(0.05 / 4)  # Bonferroni x4
    assert comparison_alpha(0.05, 0.0, 0.0, 4) == 0.05 / 4  # no factor to read
