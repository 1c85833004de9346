"""Hypothesis properties: invariances every correct two-sample analysis must have, and refusal
of invalid statistics with the field named."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.experiments.stats import (
    SampleStats,
    StatsInputError,
    analyze,
    bayesian_test,
    frequentist_test,
    sequential_test,
)

TESTS = [frequentist_test, sequential_test]


@st.composite
def sample_stats(draw: st.DrawFn) -> SampleStats:
    n = draw(st.integers(2, 100_000))
    mean = draw(st.floats(-100, 100))
    sd = draw(st.floats(0.01, 100))
    return SampleStats(n, n * mean, (n - 1) * sd * sd + n * mean * mean)


@st.composite
def binomial_stats(draw: st.DrawFn) -> SampleStats:
    n = draw(st.integers(2, 100_000))
    return SampleStats.binomial(n, draw(st.integers(0, n)))


any_stats = st.one_of(sample_stats(), binomial_stats())


def scaled(s: SampleStats, c: float) -> SampleStats:
    return SampleStats(s.n, s.sum * c, s.sum_squares * c * c)


def close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


@settings(max_examples=150, deadline=None)
@given(any_stats, any_stats)
def test_swapping_arms_flips_the_lift_and_keeps_the_p_value(a: SampleStats, b: SampleStats) -> None:
    for test in TESTS:
        ab, ba = test(a, b), test(b, a)
        assert ab.absolute.estimate == -ba.absolute.estimate
        assert ab.p_value == ba.p_value
        assert ab.absolute.ci_lower == pytest.approx(-ba.absolute.ci_upper, rel=1e-12, abs=1e-15)
    post_ab, post_ba = bayesian_test(a, b), bayesian_test(b, a)
    assert close(post_ab.chance_to_beat_control, 1 - post_ba.chance_to_beat_control, abs_=1e-12)
    assert close(post_ab.risk_treatment, post_ba.risk_control, abs_=1e-12)


@settings(max_examples=150, deadline=None)
@given(any_stats, any_stats, st.floats(1e-3, 1e3))
def test_rescaling_values_changes_nothing_but_the_units(
    a: SampleStats, b: SampleStats, c: float
) -> None:
    for test in TESTS:
        base, resc = test(a, b), test(scaled(a, c), scaled(b, c))
        assert close(resc.p_value, base.p_value)
        assert close(resc.relative.p_value, base.relative.p_value)
        assert close(resc.relative.estimate, base.relative.estimate)
        assert close(resc.relative.ci_upper, base.relative.ci_upper)
        assert close(resc.absolute.estimate, base.absolute.estimate * c, abs_=1e-9 * c)
    pa, pb = bayesian_test(a, b), bayesian_test(scaled(a, c), scaled(b, c))
    assert close(pb.chance_to_beat_control, pa.chance_to_beat_control)
    assert close(pb.relative.estimate, pa.relative.estimate)


@settings(max_examples=150, deadline=None)
@given(any_stats, any_stats, st.floats(0.001, 0.5))
def test_probabilities_are_probabilities_and_intervals_contain_estimates(
    a: SampleStats, b: SampleStats, alpha: float
) -> None:
    for test in TESTS:
        res = test(a, b, alpha=alpha)
        assert not math.isnan(res.absolute.estimate)
        for lift in (res.absolute, res.relative):
            if math.isnan(lift.estimate):  # relative lift over a zero control mean
                continue
            assert 0.0 <= lift.p_value <= 1.0
            assert lift.ci_lower <= lift.estimate <= lift.ci_upper
    post = bayesian_test(a, b, alpha=alpha)
    for lift in (post.absolute, post.relative):
        if math.isnan(lift.estimate):
            continue
        assert 0.0 <= lift.chance_to_beat_control <= 1.0
        assert lift.risk_treatment >= 0 and lift.risk_control >= 0
        assert lift.ci_lower <= lift.estimate <= lift.ci_upper


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 10_000), st.floats(-1e6, 1e6), st.floats(0.01, 0.99), st.integers(0, 3))
def test_negative_variance_is_refused_naming_the_field(
    n: int, total: float, shrink: float, position: int
) -> None:
    too_small = shrink * total * total / n - 1.0  # below sum^2/n by more than rounding
    with pytest.raises(StatsInputError) as info:
        SampleStats(n, total, too_small)
    assert info.value.field == "sum_squares"
    variations = [{"n": n, "sum": total, "sum_squares": total**2 / n + 1.0} for _ in range(4)]
    variations[position]["sum_squares"] = too_small
    with pytest.raises(StatsInputError) as info:
        analyze({"metric_type": "mean", "variations": variations})
    assert str(info.value).startswith(f"variations[{position}].sum_squares: variance would be")


@settings(max_examples=50, deadline=None)
@given(st.integers(-5, 1), st.sampled_from(["nan", "inf", "string", "bool"]))
def test_bad_counts_and_non_numbers_are_refused(n: int, junk: str) -> None:
    with pytest.raises(StatsInputError, match=r"^n: must be at least 2"):
        SampleStats(n, 0, 0)
    value = {"nan": float("nan"), "inf": float("inf"), "string": "12", "bool": True}[junk]
    with pytest.raises(StatsInputError, match=r"^variations\[1\]\.sum: must be a finite number"):
        analyze(
            {
                "metric_type": "mean",
                "variations": [
                    {"n": 10, "sum": 1, "sum_squares": 1},
                    {"n": 10, "sum": value, "sum_squares": 1},
                ],
            }
        )


def test_batch_results_equal_scalar_results() -> None:
    rng = np.random.default_rng(60)
    n = rng.integers(2, 500, 20).astype(float)
    means, sds = rng.normal(5, 1, (2, 20)), rng.uniform(0.5, 2, (2, 20))
    arms = [
        SampleStats(n, n * m, (n - 1) * s * s + n * m * m) for m, s in zip(means, sds, strict=True)
    ]
    batch = frequentist_test(*arms)
    for i in range(20):
        one = frequentist_test(
            *[SampleStats(n[i], a.sum[i], a.sum_squares[i]) for a in arms]  # type: ignore[index]
        )
        assert one.p_value == pytest.approx(batch.p_value[i], rel=1e-12)
