"""Sufficient statistics: moments match numpy on raw data, bad inputs are refused by name,
and the ratio metric's delta-method variance matches an exact identity and a bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from kirana.experiments.stats import (
    CupedStats,
    Moments,
    RatioStats,
    SampleStats,
    StatsInputError,
    moments_of,
    to_moments,
)


def sample_stats(y: np.ndarray) -> SampleStats:
    return SampleStats(y.size, y.sum(), np.square(y).sum())


def ratio_stats(num: np.ndarray, den: np.ndarray) -> RatioStats:
    return RatioStats(
        num.size,
        num.sum(),
        np.square(num).sum(),
        den.sum(),
        np.square(den).sum(),
        (num * den).sum(),
    )


def test_mean_and_variance_match_numpy() -> None:
    y = np.random.default_rng(1).gamma(2.0, 3.0, 1000)
    s = sample_stats(y)
    assert s.mean == pytest.approx(y.mean(), rel=1e-12)
    assert s.variance == pytest.approx(y.var(ddof=1), rel=1e-9)


def test_binomial_variance_is_p_one_minus_p_with_bessel() -> None:
    s = SampleStats.binomial(200, 30)
    assert (s.sum, s.sum_squares) == (30.0, 30.0)
    assert s.variance == pytest.approx(0.15 * 0.85 * 200 / 199, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"n": 1, "sum": 1, "sum_squares": 1}, "n", "at least 2"),
        ({"n": 2.5, "sum": 1, "sum_squares": 1}, "n", "whole number"),
        ({"n": 10, "sum": 10, "sum_squares": 5}, "sum_squares", "variance would be negative"),
        ({"n": 10, "sum": float("nan"), "sum_squares": 5}, "sum", "finite"),
        ({"n": 10, "sum": 1, "sum_squares": "x"}, "sum_squares", "must be a number"),
        ({"n": True, "sum": 1, "sum_squares": 1}, "n", "boolean"),
    ],
)
def test_sample_stats_refuses_bad_input_naming_the_field(
    kwargs: dict, field: str, words: str
) -> None:
    with pytest.raises(StatsInputError) as info:
        SampleStats(**kwargs)
    assert info.value.field == field
    assert words in info.value.rule
    assert str(info.value).startswith(f"{field}: ")


def test_rounding_noise_in_a_zero_variance_is_tolerated() -> None:
    # 1000 copies of 0.1: the centred sum of squares is a cancellation of two ~10 numbers.
    y = np.full(1000, 0.1)
    s = SampleStats(1000, float(np.sum(y)), float(np.sum(y * y)))
    assert s.variance == pytest.approx(0.0, abs=1e-12)


def test_binomial_refuses_more_conversions_than_units() -> None:
    with pytest.raises(StatsInputError, match=r"^sum: conversions must be between 0 and n"):
        SampleStats.binomial(10, 11)


def test_ratio_refuses_impossible_correlation_and_zero_denominator() -> None:
    with pytest.raises(StatsInputError) as info:
        RatioStats(10, 10, 20, 10, 20, 100)  # var 1 each, covariance 10
    assert info.value.field == "cross_sum"
    with pytest.raises(StatsInputError) as info:
        RatioStats(10, 10, 20, 0, 20, 0)
    assert info.value.field == "den_sum"
    with pytest.raises(StatsInputError) as info:
        RatioStats(10, 10, 20, 10, 5, 10)
    assert info.value.field == "den_sum_squares"


def test_cuped_refuses_inconsistent_pre_period_sums() -> None:
    with pytest.raises(StatsInputError) as info:
        CupedStats(10, 10, 20, 10, 1, 10)
    assert info.value.field == "pre_sum_squares"


def test_ratio_delta_variance_equals_linearised_variance_exactly() -> None:
    """Var(R) by the delta method == Var(num - R den) / (n mean_den^2): an algebraic identity."""
    rng = np.random.default_rng(2)
    den = rng.poisson(3, 5000) + 1.0
    num = rng.gamma(2.0, 5.0, den.size) * den
    s = ratio_stats(num, den)
    moments = moments_of(s)
    r = num.sum() / den.sum()
    direct = np.var(num - r * den, ddof=1) / (den.size * den.mean() ** 2)
    assert moments.mean == pytest.approx(r, rel=1e-12)
    assert moments.mean_variance == pytest.approx(direct, rel=1e-8)


def test_ratio_delta_variance_agrees_with_a_bootstrap() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    den = rng.poisson(2, n) + 1.0
    num = rng.lognormal(1.0, 1.0, n) * den
    delta = moments_of(ratio_stats(num, den)).mean_variance
    idx = rng.integers(0, n, (2000, n))
    boot = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    # the bootstrap variance has ~3% relative noise at 2000 resamples
    assert boot.var(ddof=1) == pytest.approx(delta, rel=0.1)


def test_fields_may_be_arrays_for_batch_use() -> None:
    y = np.random.default_rng(4).normal(size=(5, 100))
    s = SampleStats(np.full(5, 100), y.sum(axis=1), np.square(y).sum(axis=1))
    np.testing.assert_allclose(s.variance, y.var(axis=1, ddof=1), rtol=1e-9)
    with pytest.raises(StatsInputError, match="sum_squares"):
        SampleStats(np.full(2, 10), np.array([1.0, 10.0]), np.array([1.0, 1.0]))


def test_moments_refuse_negative_variance() -> None:
    with pytest.raises(StatsInputError, match="mean_variance"):
        Moments(1.0, -1.0, 10)


def test_mixed_statistic_kinds_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="same kind"):
        to_moments(SampleStats(10, 1, 1), Moments(0.1, 0.01, 10))
