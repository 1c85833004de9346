"""Bayesian comparison with a Gaussian approximation to the lift's posterior.

Large-sample experiment estimates are close to Gaussian, so with a normal prior the posterior
is normal and everything is closed form (no sampling, deterministic, fast):

* absolute lift ``d = m_t - m_c`` with variance ``V``;
* relative lift ``(m_t - m_c)/m_c`` with the delta-method variance, normal (as gbstats, the
  default); or, with ``relative_scale="lognormal"``, on the log scale, ``L = log(m_t / m_c)``
  with delta-method variance ``v_t/m_t^2 + v_c/m_c^2``, reported as ``exp(L) - 1`` so the
  interval is asymmetric and can never go below -100%. If either mean is not positive the log
  is undefined and the relative lift falls back to the linear delta method.

Prior: ``NormalPrior(mean, variance)`` on the effect (on the log scale for the relative lift);
the default is flat (``variance = inf``), under which the posterior is the likelihood. The
conjugate update is ``w = prior_var / (prior_var + V)``, ``post_mean = w d + (1 - w) prior_mean``,
``post_var = w V``.

Decision quantities, for effect D ~ N(mu, sigma^2):

* chance to beat control ``P(D > 0) = Phi(mu / sigma)``;
* risk (expected loss) of shipping treatment ``E[max(0, -D)]`` and of keeping control
  ``E[max(0, D)] = mu Phi(mu/sigma) + sigma phi(mu/sigma)``; on the relative scale the
  lognormal versions ``E[max(0, e^L - 1)] = e^(mu + sigma^2/2) Phi(mu/sigma + sigma) -
  Phi(mu/sigma)`` and ``E[max(0, 1 - e^L)] = Phi(-mu/sigma) - e^(mu + sigma^2/2)
  Phi(-mu/sigma - sigma)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from kirana.experiments.stats._numeric import Real, check_alpha, squeeze, standardise, to_real
from kirana.experiments.stats.errors import StatsInputError
from kirana.experiments.stats.moments import (
    Comparable,
    Moments,
    absolute_lift,
    log_lift,
    relative_lift,
    to_moments,
)


@dataclass(frozen=True)
class NormalPrior:
    """N(mean, variance) prior on an effect; ``variance=inf`` (the default) is flat."""

    mean: float = 0.0
    variance: float = math.inf

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", float(to_real(self.mean, "prior.mean")))
        var = self.variance
        if isinstance(var, bool) or not isinstance(var, int | float) or not var > 0:
            raise StatsInputError("prior.variance", "must be a positive number (or inf for flat)")
        object.__setattr__(self, "variance", float(var))


@dataclass(frozen=True)
class PosteriorLift:
    """Posterior summary of one lift; ``ci_*`` is the equal-tailed credible interval."""

    estimate: Real
    sd: Real
    ci_lower: Real
    ci_upper: Real
    chance_to_beat_control: Real
    risk_treatment: Real
    risk_control: Real
    method: str = "normal"


@dataclass(frozen=True)
class BayesianResult:
    """Treatment versus control; the headline numbers are those of the absolute lift."""

    control: Moments
    treatment: Moments
    absolute: PosteriorLift
    relative: PosteriorLift
    alpha: float

    @property
    def chance_to_beat_control(self) -> Real:
        return self.absolute.chance_to_beat_control

    @property
    def risk_treatment(self) -> Real:
        return self.absolute.risk_treatment

    @property
    def risk_control(self) -> Real:
        return self.absolute.risk_control


def posterior(estimate: Real, variance: Real, prior: NormalPrior | None) -> tuple[Real, Real]:
    """Conjugate normal update; returns (posterior mean, posterior variance)."""
    if prior is None or math.isinf(prior.variance):
        return estimate, variance
    w = prior.variance / (prior.variance + np.asarray(variance))
    return squeeze(w * estimate + (1 - w) * prior.mean), squeeze(w * variance)


def _normal_summary(mu: Real, var: Real, alpha: float, lognormal: bool) -> PosteriorLift:
    sd = squeeze(np.sqrt(var))
    z = np.asarray(standardise(mu, sd))
    s = np.asarray(sd)
    q = special.ndtri(1 - alpha / 2)
    lo, hi = np.asarray(mu) - q * s, np.asarray(mu) + q * s
    chance = special.ndtr(z)
    if lognormal:
        # e^(mu + s^2/2) Phi(.) in log space: with a very vague posterior (tiny samples) the
        # lognormal mean overflows although the product for risk_treatment stays below 1.
        log_mean = np.asarray(mu) + s**2 / 2
        with np.errstate(over="ignore", invalid="ignore"):
            risk_control = np.exp(log_mean + special.log_ndtr(z + s)) - special.ndtr(z)
            risk_treatment = special.ndtr(-z) - np.exp(log_mean + special.log_ndtr(-z - s))
            estimate, lo, hi = np.expm1(mu), np.expm1(lo), np.expm1(hi)
    else:
        pdf = np.where(np.isfinite(z), np.exp(-0.5 * np.square(z)) / math.sqrt(2 * math.pi), 0.0)
        with np.errstate(invalid="ignore"):
            risk_control = np.asarray(mu) * special.ndtr(z) + s * pdf
            risk_treatment = -np.asarray(mu) * special.ndtr(-z) + s * pdf
        estimate = mu
    # An infinite posterior sd (a relative lift over a control mean of ~1e-300) carries no
    # information: the decision quantities are undefined rather than 0.5 / inf / nan by accident.
    vague = ~np.isfinite(s)
    chance, risk_treatment, risk_control = (
        np.where(vague, np.nan, x) for x in (chance, risk_treatment, risk_control)
    )
    return PosteriorLift(
        estimate=squeeze(estimate),
        sd=sd,
        ci_lower=squeeze(lo),
        ci_upper=squeeze(hi),
        chance_to_beat_control=squeeze(chance),
        risk_treatment=squeeze(np.maximum(risk_treatment, 0.0)),
        risk_control=squeeze(np.maximum(risk_control, 0.0)),
        method="lognormal" if lognormal else "normal",
    )


_SUMMARY_FIELDS = (
    "estimate",
    "sd",
    "ci_lower",
    "ci_upper",
    "chance_to_beat_control",
    "risk_treatment",
    "risk_control",
)


RELATIVE_SCALES = ("linear", "lognormal")
"""The relative lift's model: linear delta method (gbstats, the default) or on the log scale."""


def _relative(
    c: Moments, t: Moments, alpha: float, prior: NormalPrior | None, scale: str
) -> PosteriorLift:
    if scale not in RELATIVE_SCALES:
        raise StatsInputError("bayesian_relative", f"must be one of {', '.join(RELATIVE_SCALES)}")
    if scale == "linear":
        linear = _normal_summary(*posterior(*relative_lift(c, t), prior), alpha, lognormal=False)
        return PosteriorLift(**{**linear.__dict__, "method": "linear"})
    log_est, log_var = log_lift(c, t)
    on_log = _normal_summary(*posterior(log_est, log_var, prior), alpha, lognormal=True)
    usable = ~np.isnan(np.asarray(log_est))
    if np.all(usable):
        return on_log
    linear = _normal_summary(*posterior(*relative_lift(c, t), prior), alpha, lognormal=False)
    if not np.any(usable):
        return PosteriorLift(**{**linear.__dict__, "method": "linear"})
    merged = {
        name: squeeze(np.where(usable, getattr(on_log, name), getattr(linear, name)))
        for name in _SUMMARY_FIELDS
    }
    return PosteriorLift(**merged, method="mixed")


def bayesian_test(
    control: Comparable,
    treatment: Comparable,
    *,
    alpha: float = 0.05,
    absolute_prior: NormalPrior | None = None,
    relative_prior: NormalPrior | None = None,
    theta: Real | None = None,
    relative_scale: str = "linear",
) -> BayesianResult:
    """Posterior of the lift of treatment over control, with (1 - alpha) credible intervals.

    ``relative_scale="linear"`` (the default) models the relative lift ``(t - c)/c`` as normal
    with its delta-method variance, as gbstats does, so the chance to beat control equals
    GrowthBook's; ``"lognormal"`` models ``log(t/c)`` instead (interval above -100%).
    ``relative_prior`` is on that scale: e.g. ``NormalPrior(0, 0.3**2)`` on the log scale says
    lifts beyond about +/-45% are a priori unlikely, which tames noisy early reads.
    """
    alpha = check_alpha(alpha)
    c, t = to_moments(control, treatment, theta)
    absolute = _normal_summary(
        *posterior(*absolute_lift(c, t), absolute_prior), alpha, lognormal=False
    )
    return BayesianResult(
        control=c,
        treatment=t,
        absolute=absolute,
        relative=_relative(c, t, alpha, relative_prior, relative_scale),
        alpha=alpha,
    )
