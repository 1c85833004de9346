"""Reduce each variation to (estimate, sampling variance, n) and compare two of them.

Every test in the package works on this reduction, so mean, binomial, ratio and CUPED metrics
share one implementation of Welch, the Bayesian posterior and the sequential boundary:

* mean/binomial: ``mean = sum / n``, ``mean_variance = s^2 / n``.
* ratio ``R = mean_num / mean_den`` (delta method, first-order Taylor expansion of the ratio)::

      Var(R) ~= (var_num / mu_d^2 - 2 mu_n cov / mu_d^3 + mu_n^2 var_den / mu_d^4) / n

* CUPED: ``y_adj = y - theta (x - mean_x_pooled)`` with ``theta = sum_g Sxy_g / sum_g Sxx_g``,
  the pooled within-variation regression slope. That is exactly the OLS slope of
  ``y ~ variation dummies + x``, so the adjusted difference equals the regression's treatment
  coefficient. theta is treated as known (its estimation error is O(1/N)), as in Deng et al. 2013.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kirana.experiments.stats._numeric import Real, safe_ratio, squeeze, to_real
from kirana.experiments.stats.errors import StatsInputError
from kirana.experiments.stats.sufficient import (
    CupedStats,
    RatioStats,
    SampleStats,
    centred_squares,
)


@dataclass(frozen=True)
class Moments:
    """A variation's point estimate, the variance of that estimate, and its sample size.

    ``unadjusted_mean`` (default: ``mean``) is what a relative lift is relative to: for CUPED
    as gbstats computes it, the plain metric mean, so the relative lift is (adjusted difference)
    / (control's unadjusted mean).
    """

    mean: Real
    mean_variance: Real
    n: Real
    unadjusted_mean: Real | None = None

    def __post_init__(self) -> None:
        if self.unadjusted_mean is None:
            object.__setattr__(self, "unadjusted_mean", self.mean)
        for name in ("mean", "mean_variance", "n", "unadjusted_mean"):
            object.__setattr__(self, name, to_real(getattr(self, name), name))
        if np.any(np.asarray(self.mean_variance) < 0):
            raise StatsInputError("mean_variance", "must be non-negative")


Comparable = SampleStats | RatioStats | CupedStats | Moments


def sample_moments(stats: SampleStats) -> Moments:
    return Moments(stats.mean, np.divide(stats.variance, stats.n), stats.n)


def binomial_moments(stats: SampleStats) -> Moments:
    """A 0/1 metric with the population variance ``p(1 - p)`` per unit, as gbstats uses.

    :func:`sample_moments` gives the unbiased ``n/(n-1) p(1-p)`` instead; the two differ by
    a factor n/(n-1), which only matters for small samples.
    """
    p = np.divide(stats.sum, stats.n)
    return Moments(stats.mean, squeeze(p * (1.0 - p) / stats.n), stats.n)


def ratio_moments(stats: RatioStats) -> Moments:
    """Delta-method variance of sum(num)/sum(den); see the module docstring."""
    var_n, var_d, cov = stats.covariance()
    mu_n = np.divide(stats.num_sum, stats.n)
    mu_d = np.divide(stats.den_sum, stats.n)
    unit_var = var_n / mu_d**2 - 2 * mu_n * cov / mu_d**3 + mu_n**2 * var_d / mu_d**4
    return Moments(stats.ratio, squeeze(np.maximum(unit_var, 0.0) / stats.n), stats.n)


def pooled_theta(groups: Sequence[CupedStats]) -> Real:
    """CUPED's theta: the within-variation OLS slope of post on pre, pooled over ``groups``.

    Pooling over all variations (rather than per pair) uses every unit and matches a single
    regression with one dummy per variation. A constant covariate gives theta = 0 (no change).
    """
    sxx = sum(g.centred()[1] for g in groups)
    sxy = sum(g.centred()[2] for g in groups)
    theta = safe_ratio(sxy, sxx)
    return squeeze(np.nan_to_num(theta, nan=0.0))


def pair_theta(control: CupedStats, treatment: CupedStats, *, binomial: bool = False) -> Real:
    """CUPED's theta as gbstats estimates it: covariance over variance of the pooled pair.

    The two arms' sums are added and treated as one sample, so the arms' mean difference
    enters the covariance (unlike :func:`pooled_theta`); each comparison has its own theta.
    Zero when the pooled covariate or metric has no variance (gbstats then skips CUPED).
    ``binomial``: 0/1 metric and covariate, whose variance is ``p(1 - p)`` (denominator n)
    while the covariance keeps n - 1, as gbstats computes them.
    """
    n = np.add(control.n, treatment.n)
    total = {
        f: np.add(getattr(control, f), getattr(treatment, f))
        for f in ("post_sum", "post_sum_squares", "pre_sum", "pre_sum_squares", "cross_sum")
    }
    syy = centred_squares(n, total["post_sum"], total["post_sum_squares"], "post_sum_squares")
    sxx = centred_squares(n, total["pre_sum"], total["pre_sum_squares"], "pre_sum_squares")
    sxy = np.subtract(total["cross_sum"], total["pre_sum"] * total["post_sum"] / n)
    usable = (np.asarray(sxx) > 0) & (np.asarray(syy) > 0)
    theta = safe_ratio(np.where(usable, sxy, 0.0), np.where(usable, sxx, 1.0))
    if binomial:
        theta = np.multiply(theta, np.divide(n, np.subtract(n, 1)))
    return squeeze(np.nan_to_num(theta, nan=0.0))


def cuped_moments(
    groups: Sequence[CupedStats],
    theta: Real | None = None,
    *,
    relative_to_unadjusted: bool = False,
    binomial: bool = False,
) -> list[Moments]:
    """Regression-adjusted means for every group, sharing one theta and one pooled pre mean.

    With ``relative_to_unadjusted`` (gbstats' definition) a relative lift is taken over the
    control's plain metric mean; otherwise over its adjusted mean. ``binomial``: the metric
    and covariate are 0/1 with variances ``p(1 - p)`` (see :func:`pair_theta`).
    """
    if theta is None:
        theta = pooled_theta(groups)
    pre_mean = np.divide(sum(g.pre_sum for g in groups), sum(g.n for g in groups))
    out = []
    for g in groups:
        syy, sxx, sxy = g.centred()
        adjusted = g.post_mean - np.multiply(theta, np.subtract(g.pre_mean, pre_mean))
        dof = np.subtract(g.n, 1)
        var_dof = g.n if binomial else dof
        unit_var = (
            syy / var_dof - 2 * np.multiply(theta, sxy) / dof + np.square(theta) * sxx / var_dof
        )
        variance = squeeze(np.maximum(unit_var, 0.0) / g.n)
        reference = g.post_mean if relative_to_unadjusted else None
        out.append(Moments(squeeze(adjusted), variance, g.n, reference))
    return out


def to_moments(
    control: Comparable, treatment: Comparable, theta: Real | None = None
) -> tuple[Moments, Moments]:
    """Reduce a control/treatment pair of any supported statistics to :class:`Moments`."""
    if type(control) is not type(treatment):
        raise TypeError(
            f"control and treatment must be the same kind of statistics "
            f"(got {type(control).__name__} and {type(treatment).__name__})"
        )
    if isinstance(control, CupedStats):
        c, t = cuped_moments([control, treatment], theta)  # type: ignore[list-item]
        return c, t
    return moments_of(control), moments_of(treatment)  # type: ignore[arg-type]


def moments_of(stats: SampleStats | RatioStats | Moments) -> Moments:
    """One variation on its own (CUPED needs its peers for theta: use :func:`cuped_moments`)."""
    if isinstance(stats, Moments):
        return stats
    if isinstance(stats, SampleStats):
        return sample_moments(stats)
    if isinstance(stats, RatioStats):
        return ratio_moments(stats)
    raise TypeError(f"unsupported statistics type {type(stats).__name__}")


_ROUNDING = 8 * np.finfo(float).eps


def _denoise(diff: Real, scale: Real) -> Real:
    """Zero a difference that is within rounding error of ``scale``.

    Means are computed as sum / n, so two arms whose every value is 1.0 can differ by 1e-16;
    with zero variance that noise would otherwise read as an infinitely significant effect.
    """
    return squeeze(np.where(np.abs(diff) <= _ROUNDING * np.abs(scale), 0.0, diff))


def absolute_lift(c: Moments, t: Moments) -> tuple[Real, Real]:
    """Difference in means and its variance (independent arms)."""
    diff = _denoise(np.subtract(t.mean, c.mean), np.maximum(np.abs(t.mean), np.abs(c.mean)))
    return diff, squeeze(np.add(t.mean_variance, c.mean_variance))


def relative_lift(c: Moments, t: Moments) -> tuple[Real, Real]:
    """``(t - c)/c`` and its delta-method variance ``v_t/m_c^2 + m_t^2 v_c/m_c^4``; NaN if m_c=0.

    The divisor and the ``m`` in the variance are the unadjusted means (equal to the means
    except for gbstats-style CUPED).
    """
    diff, _ = absolute_lift(c, t)
    lift = safe_ratio(diff, c.unadjusted_mean)
    ratio = safe_ratio(t.unadjusted_mean, c.unadjusted_mean)
    # (v_t + ratio^2 v_c) / m_c^2: the same formula, but a tiny m_c gives inf rather than 0*inf
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        var = (t.mean_variance + np.square(ratio) * c.mean_variance) / np.square(c.unadjusted_mean)
    return _defined(lift, var)


def log_lift(c: Moments, t: Moments) -> tuple[Real, Real]:
    """``log(t/c)`` and its delta-method variance ``v_t/m_t^2 + v_c/m_c^2``; NaN unless both > 0."""
    ok = (np.asarray(c.mean) > 0) & (np.asarray(t.mean) > 0)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        est = np.where(ok, np.log(np.where(ok, t.mean, 1.0) / np.where(ok, c.mean, 1.0)), np.nan)
        var = t.mean_variance / np.square(t.mean) + c.mean_variance / np.square(c.mean)
    return _defined(est, var)


def _defined(estimate: Real, variance: Real) -> tuple[Real, Real]:
    """NaN out both where either is not finite: a relative lift over a control mean of 0 (or of
    1e-300, whose variance overflows) is undefined, and is reported as such (null)."""
    ok = np.isfinite(estimate) & np.isfinite(variance)
    return squeeze(np.where(ok, estimate, np.nan)), squeeze(np.where(ok, variance, np.nan))


def welch_df(c: Moments, t: Moments) -> Real:
    """Welch-Satterthwaite degrees of freedom; n_c + n_t - 2 when both variances are zero."""
    vc, vt = np.asarray(c.mean_variance), np.asarray(t.mean_variance)
    den = vc**2 / (np.asarray(c.n) - 1) + vt**2 / (np.asarray(t.n) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(den > 0, (vc + vt) ** 2 / den, np.add(c.n, t.n) - 2)
    return squeeze(df)
