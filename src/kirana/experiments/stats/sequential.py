"""Always-valid inference for continuous monitoring: the normal-mixture SPRT.

Peeking at a fixed-horizon test every day and stopping at the first p < 0.05 inflates the
false-positive rate several-fold (see docs/stats.md for measured figures). The mixture
sequential probability ratio test (Robbins 1970; Johari et al. 2017, as used by Optimizely;
the two-sided normal-mixture confidence sequence of Howard et al. 2021, as used by GrowthBook)
stays valid however often you look.

With a Gaussian estimate ``d`` of the effect, variance ``V``, and a N(0, tau^2) mixture over the
effect, the likelihood ratio against H0 (effect = d0) is::

    L = sqrt(V / (V + tau^2)) * exp(tau^2 (d - d0)^2 / (2 V (V + tau^2)))

L is a nonnegative martingale under H0, so by Ville's inequality P(ever L >= 1/alpha) <= alpha.
Write ``k = tau^2 / V``; then the always-valid p-value is ``min(1, 1/L)`` and the confidence
sequence, {d0 : L < 1/alpha}, is::

    d +/- sqrt(V) * sqrt((1 + k) / k * (log(1 + k) - 2 log(alpha)))

Tuning: tau^2 is set as a multiple of the per-unit variance, tau^2 = r * s^2 / N*, where N* is
the total sample size (control + treatment) expected at the decision. Then k = r * N / N*.
Minimising the half-width at N = N* over r gives ``r = log(1 + r) - 2 log(alpha)``. By default
r is Howard et al.'s one-step approximation of that, as gbstats computes it, so the numbers
equal GrowthBook's; ``mixture="optimal"`` solves it exactly by fixed-point iteration. The plug-in
variance makes the guarantee asymptotic rather than exact, as in both products above.
"""

from __future__ import annotations

import math

import numpy as np

from kirana.experiments.stats._numeric import Real, check_alpha, squeeze, standardise, to_real
from kirana.experiments.stats.errors import StatsInputError
from kirana.experiments.stats.frequentist import FrequentistResult, Lift
from kirana.experiments.stats.moments import Comparable, absolute_lift, relative_lift, to_moments

DEFAULT_TUNING_N = 5000
"""Expected total units (control + treatment) at the decision, if the caller gives none."""


MIXTURES = ("howard", "optimal")
"""How tau^2 is tuned: Howard et al.'s one-step approximation (what gbstats uses, the default)
or the exact width-minimising fixed point."""


def optimal_mixture_ratio(alpha: float) -> float:
    """r = tau^2 / V at the target sample size minimising the interval width there."""
    alpha = check_alpha(alpha)
    c = -2.0 * math.log(alpha)
    r = c
    for _ in range(100):  # a contraction with rate 1/(1 + r) < 1: converges in a few steps
        nxt = c + math.log1p(r)
        if abs(nxt - r) < 1e-12:
            break
        r = nxt
    return r


def howard_mixture_ratio(alpha: float) -> float:
    """One fixed-point step from r = -2 ln(alpha): ``-2 ln a + ln(1 - 2 ln a)``.

    This is the tuning constant gbstats (GrowthBook) computes, as ``rho^2 * N*``; it is within
    5% of :func:`optimal_mixture_ratio` and makes Kirana's sequential numbers equal GrowthBook's.
    """
    c = -2.0 * math.log(check_alpha(alpha))
    return c + math.log1p(c)


def mixture_k(n_total: Real, tuning_n: float, alpha: float, mixture: str = "howard") -> Real:
    """k = tau^2 / V at the current total sample size."""
    if not tuning_n > 0:
        raise StatsInputError("sequential_tuning_n", "must be a positive number")
    if mixture not in MIXTURES:
        raise StatsInputError("sequential_mixture", f"must be one of {', '.join(MIXTURES)}")
    ratio = howard_mixture_ratio(alpha) if mixture == "howard" else optimal_mixture_ratio(alpha)
    return squeeze(ratio * np.asarray(n_total, dtype=float) / tuning_n)


def always_valid_p(z: Real, k: Real) -> Real:
    """min(1, 1/L) for standardised estimate z = (d - d0)/sqrt(V); computed in log space."""
    log_p = 0.5 * np.log1p(k) - np.square(z) * k / (2.0 * (1.0 + np.asarray(k)))
    with np.errstate(invalid="ignore"):
        return squeeze(np.where(np.isnan(z), np.nan, np.exp(np.minimum(log_p, 0.0))))


def half_width(se: Real, k: Real, alpha: float) -> Real:
    """Half-width of the (1 - alpha) confidence sequence at this look."""
    kk = np.asarray(k, dtype=float)
    return squeeze(np.asarray(se) * np.sqrt((1 + kk) / kk * (np.log1p(kk) - 2 * math.log(alpha))))


def _sequential_lift(estimate: Real, variance: Real, k: Real, alpha: float) -> Lift:
    se = squeeze(np.sqrt(variance))
    half = np.where(np.asarray(se) > 0, half_width(se, k, alpha), 0.0)
    return Lift(
        estimate=squeeze(estimate),
        se=se,
        ci_lower=squeeze(np.subtract(estimate, half)),
        ci_upper=squeeze(np.add(estimate, half)),
        p_value=always_valid_p(standardise(estimate, se), k),
    )


def sequential_test(
    control: Comparable,
    treatment: Comparable,
    *,
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_TUNING_N,
    theta: Real | None = None,
    tuning_alpha: float | None = None,
    mixture: str = "howard",
) -> FrequentistResult:
    """Always-valid test of treatment against control, safe to run after every new day of data.

    ``tuning_n`` is the total (control + treatment) sample size at which you expect to decide;
    fix it before the experiment starts. Results are z-based (``df`` is infinite).
    ``tuning_alpha`` (default ``alpha``) is the level the mixture was tuned for; keep it at the
    experiment's alpha when asking for the interval at another level (a multiple-comparison
    corrected one), so that the interval and the p-value come from the same martingale.
    ``mixture`` picks the tuning constant (:data:`MIXTURES`).
    """
    alpha = check_alpha(alpha)
    tuning_alpha = alpha if tuning_alpha is None else check_alpha(tuning_alpha, "alpha")
    tuning_n = float(to_real(tuning_n, "sequential_tuning_n"))
    c, t = to_moments(control, treatment, theta)
    k = mixture_k(np.add(c.n, t.n), tuning_n, tuning_alpha, mixture)
    return FrequentistResult(
        control=c,
        treatment=t,
        absolute=_sequential_lift(*absolute_lift(c, t), k, alpha),
        relative=_sequential_lift(*relative_lift(c, t), k, alpha),
        df=math.inf,
        alpha=alpha,
        sequential=True,
    )
