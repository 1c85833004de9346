"""Seeded, vectorised simulation studies of the engine's operating characteristics.

Each ``measure_*`` function returns the figure quoted in docs/stats.md, so the documentation and
the assertions come from the same code (run with ``-s`` to see them printed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kirana.experiments.stats import (
    CupedStats,
    RatioStats,
    SampleStats,
    frequentist_test,
)

SIMS = 2000
BAND = 3 * math.sqrt(0.05 * 0.95 / SIMS)  # +/- 3 binomial standard errors around 5%


def _sample(y: np.ndarray) -> SampleStats:
    """Sufficient statistics along the last axis: one experiment per leading index."""
    return SampleStats(y.shape[-1], y.sum(axis=-1), np.square(y).sum(axis=-1))


def measure_aa_rejection_continuous(seed: int = 50) -> float:
    """A/A, lognormal (skewed, revenue-like) values, 500 users per arm."""
    y = np.random.default_rng(seed).lognormal(0.0, 1.0, size=(2, SIMS, 500))
    return float(np.mean(frequentist_test(_sample(y[0]), _sample(y[1])).p_value < 0.05))


def measure_aa_rejection_binomial(seed: int = 51) -> float:
    """A/A, 10% conversion, 1,000 users per arm."""
    conv = np.random.default_rng(seed).binomial(1000, 0.1, size=(2, SIMS)).astype(float)
    res = frequentist_test(SampleStats.binomial(1000, conv[0]), SampleStats.binomial(1000, conv[1]))
    return float(np.mean(res.p_value < 0.05))


def measure_coverage_mean(seed: int = 52) -> tuple[float, float]:
    """A/B with a known effect: normal(10, 3) vs normal(10.5, 3), 400 users per arm.

    Returns coverage of the absolute (true 0.5) and relative (true 5%) 95% intervals.
    """
    rng = np.random.default_rng(seed)
    c, t = rng.normal(10.0, 3.0, (SIMS, 400)), rng.normal(10.5, 3.0, (SIMS, 400))
    res = frequentist_test(_sample(c), _sample(t))
    absolute = (res.absolute.ci_lower <= 0.5) & (res.absolute.ci_upper >= 0.5)
    relative = (res.relative.ci_lower <= 0.05) & (res.relative.ci_upper >= 0.05)
    return float(absolute.mean()), float(relative.mean())


def measure_coverage_ratio(seed: int = 53) -> float:
    """Revenue per order, orders ~ 1 + Poisson(2) per user, true ratio 20 vs 22 (+10%)."""
    rng = np.random.default_rng(seed)
    arms = []
    for value in (20.0, 22.0):
        orders = 1.0 + rng.poisson(2.0, (SIMS, 500))
        revenue = rng.gamma(orders * 2.0, value / 2.0)  # sum of `orders` gamma(2) baskets
        arms.append(
            RatioStats(
                500,
                revenue.sum(axis=1),
                np.square(revenue).sum(axis=1),
                orders.sum(axis=1),
                np.square(orders).sum(axis=1),
                (revenue * orders).sum(axis=1),
            )
        )
    res = frequentist_test(*arms)
    return float(np.mean((res.relative.ci_lower <= 0.1) & (res.relative.ci_upper >= 0.1)))


def measure_cuped(rho: float, seed: int = 54) -> tuple[float, float]:
    """CUPED vs plain t-test, covariate correlation ``rho``, effect 0.1 sd, 500 per arm.

    Returns (mean CUPED interval width / mean plain width, CUPED coverage of the effect).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (2, SIMS, 500))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(0.0, 1.0, x.shape)
    y[1] += 0.1

    def cuped(k: int) -> CupedStats:
        return CupedStats(
            500,
            y[k].sum(axis=1),
            np.square(y[k]).sum(axis=1),
            x[k].sum(axis=1),
            np.square(x[k]).sum(axis=1),
            (x[k] * y[k]).sum(axis=1),
        )

    plain = frequentist_test(_sample(y[0]), _sample(y[1]))
    adjusted = frequentist_test(cuped(0), cuped(1))
    width = np.mean(adjusted.absolute.ci_upper - adjusted.absolute.ci_lower) / np.mean(
        plain.absolute.ci_upper - plain.absolute.ci_lower
    )
    covered = (adjusted.absolute.ci_lower <= 0.1) & (adjusted.absolute.ci_upper >= 0.1)
    return float(width), float(covered.mean())


def test_aa_rejects_at_the_nominal_rate() -> None:
    for rate in (measure_aa_rejection_continuous(), measure_aa_rejection_binomial()):
        print(f"A/A rejection rate at alpha=0.05: {rate:.4f}")
        assert abs(rate - 0.05) < BAND


def test_intervals_cover_a_known_effect() -> None:
    absolute, relative = measure_coverage_mean()
    ratio = measure_coverage_ratio()
    print(f"coverage: absolute {absolute:.4f}, relative {relative:.4f}, ratio {ratio:.4f}")
    for coverage in (absolute, relative, ratio):
        assert abs(coverage - 0.95) < BAND


@pytest.mark.parametrize("rho", [0.7, 0.0])
def test_cuped_narrows_intervals_only_when_the_covariate_helps(rho: float) -> None:
    ratio, coverage = measure_cuped(rho)
    print(f"CUPED rho={rho}: width ratio {ratio:.4f}, coverage {coverage:.4f}")
    assert abs(coverage - 0.95) < BAND
    if rho:
        assert ratio == pytest.approx(math.sqrt(1 - rho**2), abs=0.02)  # theory: 0.714
    else:
        assert 0.99 < ratio < 1.005  # no material widening from estimating theta
