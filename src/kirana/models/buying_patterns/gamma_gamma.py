"""Gamma-Gamma: how much a customer spends per order.

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note), after Colombo &
Jiang (1999) and Fader, Hardie & Lee (2005, "RFM and CLV", JMR 42(4)). Each order's value is
Gamma(p, nu), so a customer's mean order value is p / nu; across customers nu ~ Gamma(q, v).
Only the x repeat orders and their mean m_x are used: x * m_x ~ Gamma(p x, nu), which gives a
closed-form likelihood and a posterior mean that shrinks m_x towards the population mean
p v / (q - 1), more so for customers with few orders.

The model assumes spend per order is independent of how often a customer buys (so it can be
combined with the BG/NBD); :func:`frequency_monetary_correlation` is the usual check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.special import digamma, gammaln

from kirana.models.buying_patterns._optim import fit_log_params, standard_errors

# |Pearson r| at or above this (a "moderate" correlation by Cohen's convention) is flagged.
CORRELATION_WARNING = 0.3


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Order value ~ Gamma(shape p, rate nu); nu ~ Gamma(shape q, rate v) across customers."""

    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(val) for k, val in asdict(self).items()}

    @property
    def population_mean(self) -> float:
        """E[p / nu] = p v / (q - 1); infinite (NaN here) when q <= 1."""
        return self.p * self.v / (self.q - 1) if self.q > 1 else float("nan")


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float
    n_customers: int
    converged: bool
    message: str
    warning: str | None = None
    # Asymptotic standard errors (observed information), None if the optimum is degenerate.
    standard_errors: dict[str, float] | None = None


def _check(frequency: ArrayLike, monetary: ArrayLike) -> tuple[NDArray, NDArray]:
    x, m = np.broadcast_arrays(np.asarray(frequency, float), np.asarray(monetary, float))
    if x.size == 0:
        raise ValueError("no customers with repeat purchases to fit the spend model on")
    if np.any(x < 1) or np.any(~(m > 0)):
        raise ValueError("the Gamma-Gamma needs frequency >= 1 and a positive mean spend")
    return x, m


def loglikelihood(
    params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike
) -> NDArray[np.float64]:
    """log f(m_x | p, q, v, x), as in the note (the density of the mean, not of the sum)."""
    x, m = _check(frequency, monetary)
    p, q, v = params.p, params.q, params.v
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m)
    )


def _negll_and_grad(theta_log: NDArray, x, m, w) -> tuple[float, NDArray]:
    p, q, v = np.exp(theta_log)
    log_vxm = np.log(v + x * m)
    ll = loglikelihood(GammaGammaParams(p, q, v), x, m)
    d_p = x * (digamma(p * x + q) - digamma(p * x) + np.log(m) + np.log(x) - log_vxm)
    d_q = digamma(p * x + q) - digamma(q) + np.log(v) - log_vxm
    d_v = q / v - (p * x + q) / (v + x * m)
    total = w.sum()
    grad = np.array([(w * d).sum() for d in (d_p, d_q, d_v)]) / total * np.array([p, q, v])
    return -float((w * ll).sum() / total), -grad


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary: ArrayLike,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> GammaGammaFit:
    """Maximum-likelihood p, q, v on customers with x >= 1 repeat orders of mean value m_x.

    ``penalizer`` adds ``penalizer * (log p^2 + log q^2)`` to the mean negative
    log-likelihood (v is a scale, in currency units, so it is left alone).
    """
    x, m = _check(frequency, monetary)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, float), x.shape)
    mean = float((w * m).sum() / w.sum())
    # Starting points: p from a guess of the within-customer coefficient of variation,
    # q a little above 1 or 3, and v so that the population mean p v / (q - 1) matches.
    starts = [(p0, q0, p0 / mean * (q0 - 1)) for p0 in (1.0, 6.0) for q0 in (2.0, 5.0)]
    shapes = np.array([1.0, 1.0, 0.0])
    args = (x, m, w)
    theta, ok, msg, warn = fit_log_params(
        _negll_and_grad, starts, args, penalizer, shapes, ("p", "q", "v")
    )
    params = GammaGammaParams(*map(float, np.exp(theta)))
    ll = float((w * loglikelihood(params, x, m)).sum())
    se = None if warn else standard_errors(_negll_and_grad, theta, args, float(w.sum()))
    ses = None if se is None else dict(zip(("p", "q", "v"), map(float, se), strict=True))
    return GammaGammaFit(params, ll, round(float(w.sum())), ok, msg, warn, ses)


def conditional_expected_spend(
    params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike
) -> NDArray[np.float64]:
    """E[mean order value | x, m_x] = (p (v + x m_x)) / (p x + q - 1), as in the note.

    A weighted average of the population mean and the customer's own m_x. For x = 0 it is the
    population mean (NaN when q <= 1, where that mean is infinite); m_x is ignored there, so
    pass anything (e.g. NaN).
    """
    x, m = np.broadcast_arrays(np.asarray(frequency, float), np.asarray(monetary, float))
    p, q, v = params.p, params.q, params.v
    own = np.where(x > 0, x * np.nan_to_num(m), 0.0)
    denom = p * x + q - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, p * (v + own) / denom, np.nan)


def frequency_monetary_correlation(frequency: ArrayLike, monetary: ArrayLike) -> dict:
    """Pearson and Spearman correlation of x and m_x over customers with x >= 1.

    The Gamma-Gamma assumes they are independent; a clear correlation (|r| >= 0.3) means its
    spend predictions, and any CLV built from them, are biased for heavy or light buyers.
    """
    x, m = np.asarray(frequency, float), np.asarray(monetary, float)
    keep = (x >= 1) & (m > 0)
    x, m = x[keep], m[keep]
    out: dict = {"n_customers": int(keep.sum()), "pearson": None, "pearson_p_value": None}
    out |= {"spearman": None, "independence_plausible": None, "warning": None}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(m) == 0:
        out["warning"] = "too few customers, or no variation, to check the correlation"
        return out
    pearson = stats.pearsonr(x, m)
    spearman = stats.spearmanr(x, m)
    out["pearson"] = float(pearson.statistic)
    out["pearson_p_value"] = float(pearson.pvalue)
    out["spearman"] = float(spearman.statistic)
    out["independence_plausible"] = bool(abs(pearson.statistic) < CORRELATION_WARNING)
    if not out["independence_plausible"]:
        out["warning"] = (
            f"frequency and mean spend are correlated (Pearson r = {pearson.statistic:.2f}); "
            "the Gamma-Gamma assumes independence, so treat spend predictions with care"
        )
    return out
