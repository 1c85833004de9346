"""Bayesian engine: closed forms checked by numerical integration, priors shrink as conjugate
algebra says, and chance-to-beat-control is uniform under A/A."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from kirana.experiments.stats import (
    Moments,
    NormalPrior,
    SampleStats,
    StatsInputError,
    bayesian_test,
)


def test_hand_checked_binomial_chance_and_risk() -> None:
    res = bayesian_test(SampleStats.binomial(2000, 180), SampleStats.binomial(2100, 231))
    p1, p2 = 180 / 2000, 231 / 2100
    var = p1 * (1 - p1) / 1999 + p2 * (1 - p2) / 2099  # s^2/n with the n - 1 variance
    mu, sd = p2 - p1, math.sqrt(var)
    assert res.absolute.sd == pytest.approx(sd, rel=1e-12)
    assert res.chance_to_beat_control == pytest.approx(sps.norm.cdf(mu / sd), rel=1e-12)
    # expected losses by direct numerical integration against the posterior density
    post = sps.norm(mu, sd)
    risk_t = integrate.quad(lambda d: -d * post.pdf(d), mu - 12 * sd, 0.0)[0]
    risk_c = integrate.quad(lambda d: d * post.pdf(d), 0.0, mu + 12 * sd)[0]
    assert res.risk_treatment == pytest.approx(risk_t, rel=1e-6)
    assert res.risk_control == pytest.approx(risk_c, rel=1e-6)
    assert round(res.chance_to_beat_control, 5) == 0.98369
    assert round(res.risk_treatment, 7) == 0.0000547
    assert round(res.risk_control, 7) == 0.0200547
    # risk_control - risk_treatment = E[D] exactly
    assert res.risk_control - res.risk_treatment == pytest.approx(mu, rel=1e-9)


def test_relative_lift_is_lognormal_and_its_risks_integrate() -> None:
    c, t = Moments(10.0, 0.09, 1000), Moments(10.6, 0.1, 1000)
    res = bayesian_test(c, t, alpha=0.1, relative_scale="lognormal").relative
    mu = math.log(10.6 / 10.0)
    sd = math.sqrt(0.1 / 10.6**2 + 0.09 / 10.0**2)
    assert res.method == "lognormal"
    assert res.estimate == pytest.approx(math.expm1(mu), rel=1e-12)
    q = sps.norm.ppf(0.95)
    assert (res.ci_lower, res.ci_upper) == pytest.approx(
        (math.expm1(mu - q * sd), math.expm1(mu + q * sd)), rel=1e-12
    )
    dens = sps.norm(mu, sd).pdf
    lo, hi = mu - 12 * sd, mu + 12 * sd
    risk_c = integrate.quad(lambda u: math.expm1(u) * dens(u), 0.0, hi)[0]
    risk_t = integrate.quad(lambda u: -math.expm1(u) * dens(u), lo, 0.0)[0]
    assert res.risk_control == pytest.approx(risk_c, rel=1e-6)
    assert res.risk_treatment == pytest.approx(risk_t, rel=1e-6)


def test_negative_means_fall_back_to_the_linear_relative_lift() -> None:
    res = bayesian_test(
        Moments(-2.0, 0.04, 500), Moments(-1.8, 0.04, 500), relative_scale="lognormal"
    )
    assert res.relative.method == "linear"
    assert res.relative.estimate == pytest.approx(-1.8 / -2.0 - 1)


def test_normal_prior_is_the_conjugate_update() -> None:
    c, t = Moments(1.0, 0.01, 100), Moments(1.3, 0.02, 100)
    prior = NormalPrior(0.0, 0.03)
    res = bayesian_test(c, t, absolute_prior=prior)
    v = 0.03
    post_var = 1 / (1 / 0.03 + 1 / v)
    post_mean = post_var * (0.3 / v + 0.0 / 0.03)
    assert res.absolute.estimate == pytest.approx(post_mean, rel=1e-12)
    assert res.absolute.sd == pytest.approx(math.sqrt(post_var), rel=1e-12)
    flat = bayesian_test(c, t)
    assert 0 < res.absolute.estimate < flat.absolute.estimate  # shrunk toward 0
    # a relative prior only touches the relative lift
    rel = bayesian_test(c, t, relative_prior=NormalPrior(0.0, 0.01))
    assert rel.absolute == flat.absolute
    assert rel.relative.estimate < flat.relative.estimate


@pytest.mark.parametrize("variance", [0, -1.0, float("nan"), "wide"])
def test_prior_variance_must_be_positive(variance: object) -> None:
    with pytest.raises(StatsInputError, match=r"^prior.variance: "):
        NormalPrior(0.0, variance)  # type: ignore[arg-type]


def test_chance_to_beat_control_is_uniform_under_aa() -> None:
    """2,000 A/A experiments on a skewed revenue-like metric, 500 users per arm."""
    rng = np.random.default_rng(20)
    sims, n = 2000, 500
    y = rng.lognormal(0.0, 1.0, size=(2, sims, n))
    arms = [SampleStats(n, a.sum(axis=1), np.square(a).sum(axis=1)) for a in y]
    res = bayesian_test(*arms)
    ctw = np.asarray(res.chance_to_beat_control)
    assert ctw.shape == (sims,)
    assert sps.kstest(ctw, "uniform").pvalue > 0.01
    deciles = np.histogram(ctw, bins=10, range=(0, 1))[0]
    assert sps.chisquare(deciles).pvalue > 0.01, deciles
    # a "95% chance to win" rule therefore fires ~5% of the time with no effect
    assert np.mean(ctw > 0.95) == pytest.approx(0.05, abs=0.015)


def test_default_relative_lift_is_linear_as_gbstats_shows_it() -> None:
    """Chance to beat control on (t - c)/c, normal with the delta-method variance."""
    c, t = Moments(10.0, 0.09, 1000), Moments(10.6, 0.1, 1000)
    res = bayesian_test(c, t).relative
    sd = math.sqrt(0.1 / 10.0**2 + 10.6**2 * 0.09 / 10.0**4)
    assert res.method == "linear" and res.estimate == pytest.approx(0.06, rel=1e-12)
    assert res.sd == pytest.approx(sd, rel=1e-12)
    assert res.chance_to_beat_control == pytest.approx(sps.norm.cdf(0.06 / sd), rel=1e-12)
    with pytest.raises(StatsInputError, match=r"^bayesian_relative: "):
        bayesian_test(c, t, relative_scale="log")
