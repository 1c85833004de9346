"""Fixed-horizon frequentist comparison: Welch's t-test on absolute and relative lift.

Welch rather than Student because traffic splits and treatment effects make the arms'
variances differ, and Welch costs nothing when they don't. The absolute lift's p-value is
exactly ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``. The relative lift
``m_t/m_c - 1`` uses the delta-method standard error with the same Welch degrees of freedom;
its interval is symmetric on the relative scale (what dashboards show).

Valid only if you look once, at a sample size fixed in advance; for continuous monitoring use
:mod:`kirana.experiments.stats.sequential`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from kirana.experiments.stats._numeric import Real, check_alpha, squeeze, standardise
from kirana.experiments.stats.moments import (
    Comparable,
    Moments,
    absolute_lift,
    relative_lift,
    to_moments,
    welch_df,
)


@dataclass(frozen=True)
class Lift:
    """One lift (absolute or relative) with its standard error, interval and p-value."""

    estimate: Real
    se: Real
    ci_lower: Real
    ci_upper: Real
    p_value: Real


@dataclass(frozen=True)
class FrequentistResult:
    """Treatment versus control. ``p_value`` is the absolute-lift test (H0: equal means)."""

    control: Moments
    treatment: Moments
    absolute: Lift
    relative: Lift
    df: Real
    alpha: float
    sequential: bool = False

    @property
    def p_value(self) -> Real:
        return self.absolute.p_value


def t_lift(estimate: Real, variance: Real, df: Real, alpha: float) -> Lift:
    """Two-sided t-test and (1 - alpha) interval for one estimate; df = inf gives the z-test."""
    se = squeeze(np.sqrt(variance))
    t = standardise(estimate, se)
    p = squeeze(np.clip(2.0 * special.stdtr(df, -np.abs(t)), 0.0, 1.0))
    q = special.stdtrit(df, 1.0 - alpha / 2.0)
    half = np.where(np.asarray(se) > 0, q * np.asarray(se), 0.0)
    return Lift(
        estimate=squeeze(estimate),
        se=se,
        ci_lower=squeeze(np.subtract(estimate, half)),
        ci_upper=squeeze(np.add(estimate, half)),
        p_value=p,
    )


def frequentist_test(
    control: Comparable,
    treatment: Comparable,
    *,
    alpha: float = 0.05,
    theta: Real | None = None,
) -> FrequentistResult:
    """Welch's t-test of treatment against control.

    ``control`` and ``treatment`` are the same kind of statistics: :class:`SampleStats`
    (mean/count/binomial), :class:`RatioStats`, :class:`CupedStats` (``theta`` defaults to the
    slope pooled over this pair) or already-reduced :class:`Moments`.
    """
    alpha = check_alpha(alpha)
    c, t = to_moments(control, treatment, theta)
    df = welch_df(c, t)
    return FrequentistResult(
        control=c,
        treatment=t,
        absolute=t_lift(*absolute_lift(c, t), df, alpha),
        relative=t_lift(*relative_lift(c, t), df, alpha),
        df=df,
        alpha=alpha,
    )
