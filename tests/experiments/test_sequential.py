"""Sequential (always-valid) inference: the closed forms match the mixture likelihood ratio
computed by numerical integration, and daily peeking keeps the error rate at alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy import stats as sps

from kirana.experiments.stats import (
    Moments,
    SampleStats,
    StatsInputError,
    frequentist_test,
    optimal_mixture_ratio,
    sequential_test,
)


def mixture_likelihood_ratio(d: float, v: float, tau2: float) -> float:
    """int N(d; theta, v) N(theta; 0, tau2) dtheta / N(d; 0, v), by quadrature."""
    sd = math.sqrt(tau2)

    def integrand(theta: float) -> float:
        return sps.norm.pdf(d, theta, math.sqrt(v)) * sps.norm.pdf(theta, 0, sd)

    num = integrate.quad(integrand, -12 * sd, 12 * sd, points=[d], limit=200)[0]
    return num / sps.norm.pdf(d, 0, math.sqrt(v))


@pytest.mark.parametrize(("n", "d"), [(400, 0.05), (1000, 0.12), (4000, 0.02), (8000, 0.07)])
def test_p_value_is_one_over_the_mixture_likelihood_ratio(n: int, d: float) -> None:
    c, t = Moments(1.0, 1.0 / n, n), Moments(1.0 + d, 1.1 / n, n)
    res = sequential_test(c, t, tuning_n=5000, mixture="optimal")
    v = 2.1 / n
    tau2 = optimal_mixture_ratio(0.05) * v * (2 * n) / 5000  # k = r N / N*, tau^2 = k V
    lr = mixture_likelihood_ratio(d, v, tau2)
    assert res.p_value == pytest.approx(min(1.0, 1.0 / lr), rel=1e-6)


def test_interval_is_the_set_of_unrejected_effects() -> None:
    res = sequential_test(Moments(1.0, 0.001, 1000), Moments(1.08, 0.0012, 1000), alpha=0.1)
    for edge in (res.absolute.ci_lower, res.absolute.ci_upper):
        shifted = Moments(1.08 - edge, 0.0012, 1000)  # test H0: effect == edge
        at_edge = sequential_test(Moments(1.0, 0.001, 1000), shifted, alpha=0.1)
        assert at_edge.p_value == pytest.approx(0.1, rel=1e-9)


def test_tuning_minimises_the_interval_width_at_the_expected_sample_size() -> None:
    for alpha in (0.01, 0.05, 0.1):
        c = -2 * math.log(alpha)
        best = optimize.minimize_scalar(
            lambda k, c=c: (1 + k) / k * (math.log1p(k) + c), bounds=(0.01, 100), method="bounded"
        )
        assert optimal_mixture_ratio(alpha) == pytest.approx(best.x, rel=1e-4)
    # Howard et al.'s closed-form approximation is within a few percent of the exact optimum
    c = -2 * math.log(0.05)
    assert optimal_mixture_ratio(0.05) == pytest.approx(c + math.log(1 + c), rel=0.05)


def test_sequential_intervals_are_wider_than_fixed_horizon_ones() -> None:
    c, t = SampleStats(2500, 2500, 5000), SampleStats(2500, 2600, 5300)
    fixed = frequentist_test(c, t)
    seq = sequential_test(c, t, tuning_n=5000, mixture="optimal")
    assert seq.absolute.estimate == fixed.absolute.estimate
    width = seq.absolute.ci_upper - seq.absolute.ci_lower
    assert width > fixed.absolute.ci_upper - fixed.absolute.ci_lower
    assert seq.p_value > fixed.p_value
    assert seq.sequential and not fixed.sequential


def test_tuning_n_must_be_positive() -> None:
    with pytest.raises(StatsInputError, match=r"^sequential_tuning_n: "):
        sequential_test(Moments(0, 1, 10), Moments(0, 1, 10), tuning_n=0)


def _daily_looks(rng: np.random.Generator, sims: int, looks: int, per_look: int, effect: float):
    """Cumulative sufficient statistics after each daily look: arrays of shape (sims, looks)."""
    arms = []
    for shift in (0.0, effect):
        y = rng.normal(shift, 1.0, size=(sims, looks, per_look))
        total = np.cumsum(y.sum(axis=2), axis=1)
        squares = np.cumsum(np.square(y).sum(axis=2), axis=1)
        n = np.broadcast_to(per_look * np.arange(1, looks + 1), total.shape)
        arms.append(SampleStats(n, total, squares))
    return arms


def test_daily_peeking_inflates_fixed_but_not_sequential_error_rate() -> None:
    """2,000 A/A experiments, 20 daily looks of 50 users per arm, stop at the first p < 0.05."""
    sims, looks, per_look = 2000, 20, 50
    control, treatment = _daily_looks(np.random.default_rng(30), sims, looks, per_look, 0.0)
    fixed = frequentist_test(control, treatment)
    seq = sequential_test(control, treatment, tuning_n=2 * looks * per_look, mixture="optimal")
    final_only = np.mean(fixed.p_value[:, -1] < 0.05)
    fixed_peeking = np.mean((fixed.p_value < 0.05).any(axis=1))
    seq_peeking = np.mean((seq.p_value < 0.05).any(axis=1))
    band = 3 * math.sqrt(0.05 * 0.95 / sims)
    assert abs(final_only - 0.05) < band  # one look: nominal
    assert fixed_peeking > 0.15  # twenty looks: ~4x the nominal rate
    assert seq_peeking <= 0.05 + band  # always valid
    # every sequential interval, at every look, covers the true effect (0) unless it rejected
    covers = (seq.absolute.ci_lower <= 0) & (seq.absolute.ci_upper >= 0)
    np.testing.assert_array_equal(covers, seq.p_value >= 0.05)


def test_sequential_intervals_cover_a_real_effect_at_every_look() -> None:
    sims, looks, per_look, effect = 2000, 20, 50, 0.15
    control, treatment = _daily_looks(np.random.default_rng(31), sims, looks, per_look, effect)
    seq = sequential_test(control, treatment, tuning_n=2 * looks * per_look, mixture="optimal")
    covered_always = ((seq.absolute.ci_lower <= effect) & (seq.absolute.ci_upper >= effect)).all(
        axis=1
    )
    assert covered_always.mean() >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / sims)
    # and it has power: most experiments detect the effect by the last look
    assert np.mean(seq.p_value[:, -1] < 0.05) > 0.5


def test_default_mixture_is_the_one_step_tuning_gbstats_computes() -> None:
    """gbstats: rho^2 = (-2 ln a + ln(1 - 2 ln a)) / N*, so k = N rho^2."""
    c, t = Moments(1.0, 0.002, 800), Moments(1.1, 0.0021, 820)
    alpha = 0.05
    k = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) * 1620 / 3000
    z2 = 0.1**2 / 0.0041
    expected = min(1.0, math.sqrt(1 + k) * math.exp(-z2 * k / (2 * (1 + k))))
    assert sequential_test(c, t, tuning_n=3000).p_value == pytest.approx(expected, rel=1e-9)
    optimal = sequential_test(c, t, tuning_n=3000, mixture="optimal").p_value
    assert optimal != pytest.approx(expected, rel=1e-3)
    with pytest.raises(StatsInputError, match=r"^sequential_mixture: "):
        sequential_test(c, t, mixture="fast")
