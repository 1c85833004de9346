"""BG/NBD: how many orders a customer will place, and whether they are still a customer.

Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2). While alive, a customer buys as a Poisson process
with rate lambda ~ Gamma(r, alpha); after every repeat purchase they drop out for good with
probability p ~ Beta(a, b). A customer is summarised by (x, t_x, T): x repeat purchases, the
last at t_x, observed for T since the first purchase (all in the same time unit). We chose it
over Pareto/NBD because its likelihood needs no numerical integration and fits in
milliseconds, at the cost of assuming nobody drops out before their first repeat purchase
(so P(alive | x = 0) = 1).

Everything is vectorised over customers; the likelihood is written in logs (gammaln,
logaddexp) so that customers with hundreds of purchases do not overflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import eigh_tridiagonal
from scipy.special import digamma, expit, gammaln, hyp2f1

from kirana.models.buying_patterns._optim import fit_log_params, standard_errors


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    """lambda ~ Gamma(shape r, rate alpha) per time unit; dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class BGNBDFit:
    params: BGNBDParams
    log_likelihood: float  # summed over customers (weighted), without the penalty
    n_customers: int
    converged: bool
    message: str
    warning: str | None = None
    # Asymptotic standard errors (observed information), None if the optimum is degenerate.
    standard_errors: dict[str, float] | None = None


def _arrays(*values: ArrayLike) -> list[NDArray[np.float64]]:
    return list(np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values)))


def _terms(theta: tuple[float, ...], x: NDArray, t_x: NDArray, T: NDArray):
    """The paper's likelihood A1 * A2 * (A3 + [x > 0] A4) as log A1 + log A2 + logaddexp."""
    r, alpha, a, b = theta
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    # A4 only exists for x > 0; b + x - 1 > 0 there, and is masked elsewhere (b - 1 may be <= 0).
    a4 = np.where(
        repeat,
        np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return a1, a2, a3, a4


def loglikelihood(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Per-customer log-likelihood log L(r, alpha, a, b | x, t_x, T), as in the paper."""
    x, t_x, age = _arrays(frequency, recency, T)
    a1, a2, a3, a4 = _terms((params.r, params.alpha, params.a, params.b), x, t_x, age)
    return a1 + a2 + np.logaddexp(a3, a4)


def _negll_and_grad(theta_log: NDArray, x, t_x, T, w) -> tuple[float, NDArray]:
    """Mean weighted negative log-likelihood and its gradient in log-parameters."""
    r, alpha, a, b = np.exp(theta_log)
    a1, a2, a3, a4 = _terms((r, alpha, a, b), x, t_x, T)
    tail = np.logaddexp(a3, a4)
    ll = a1 + a2 + tail
    w3, w4 = np.exp(a3 - tail), np.exp(a4 - tail)  # w4 = 0 where x = 0
    bx1 = np.where(x > 0, b + x - 1, 1.0)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha)
    d_r -= w3 * np.log(alpha + T) + w4 * np.log(alpha + t_x)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / bx1
    total = w.sum()
    grad = np.array([(w * d).sum() for d in (d_r, d_alpha, d_a, d_b)]) / total
    grad *= np.array([r, alpha, a, b])  # chain rule for log-parameters
    return -float((w * ll).sum() / total), -grad


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> BGNBDFit:
    """Maximum-likelihood r, alpha, a, b.

    Optimised with L-BFGS-B on log-parameters (so they stay positive without constraints)
    with the analytic gradient, from a few starting points. ``weights`` lets callers collapse
    identical (x, t_x, T) rows into one. ``penalizer`` adds ``penalizer * (log r^2 + log a^2 +
    log b^2)`` to the mean negative log-likelihood: it keeps r, a and b finite when the data
    cannot tell them apart (e.g. nobody seems to drop out, so a, b run off to infinity).
    alpha is left out because it is a scale, in the chosen time unit.
    """
    x, t_x, age = _arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else np.broadcast_to(np.asarray(weights, float), x.shape)
    _check_rft(x, t_x, age)
    if not (w * x).sum() > 0:
        raise ValueError("no repeat purchases: the BG/NBD needs customers with frequency >= 1")
    rate = (w * x).sum() / max((w * age).sum(), 1e-12)  # pooled purchase rate, sets alpha's scale
    starts = [(r0, r0 / rate, a0, b0) for r0 in (0.5, 2.0) for a0, b0 in ((0.5, 2.0), (2.0, 8.0))]
    shapes = np.array([1.0, 0.0, 1.0, 1.0])
    args = (x, t_x, age, w)
    theta, ok, msg, warn = fit_log_params(
        _negll_and_grad, starts, args, penalizer, shapes, ("r", "alpha", "a", "b")
    )
    params = BGNBDParams(*map(float, np.exp(theta)))
    ll = float((w * loglikelihood(params, x, t_x, age)).sum())
    se = None if warn else standard_errors(_negll_and_grad, theta, args, float(w.sum()))
    ses = None if se is None else dict(zip(("r", "alpha", "a", "b"), map(float, se), strict=True))
    return BGNBDFit(params, ll, round(float(w.sum())), ok, msg, warn, ses)


def _check_rft(x: NDArray, t_x: NDArray, T: NDArray) -> None:
    if x.size == 0:
        raise ValueError("no customers to fit")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise ValueError("need frequency >= 0 and 0 <= recency <= T for every customer")


def probability_alive(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """P(alive at T | x, t_x, T) (Fader, Hardie & Lee 2008, "Computing P(alive) Using the BG/NBD
    Model", note).

    1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)) for x > 0, and exactly
    1 for x = 0 (in the BG/NBD nobody drops out before their first repeat purchase).
    """
    x, t_x, age = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds_dead = (
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def _expected_if_alive(params: BGNBDParams, t, x, T) -> NDArray[np.float64]:
    """E[purchases in (T, T + t] | alive at T, x, T]: the paper's E[Y(t)] / P(alive).

    The closed form is (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) *
    2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]. It is 0/0 at a = 1 and scipy's 2F1 can lose
    accuracy for extreme arguments, so any value outside the bounds the answer must satisfy,
    0 <= E <= (r+x) t/(alpha+T) (it cannot beat a Poisson process that never drops out), is
    recomputed by quadrature over the posterior of p.
    """
    shape = np.shape(t)
    t, x, T = (np.ravel(v) for v in (t, x, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    with np.errstate(all="ignore"):
        head = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
        value = (a + b + x - 1) / (a - 1) * (1 - head * hyp2f1(r + x, b + x, a + b + x - 1, z))
    bound = (r + x) * t / (alpha + T)
    bad = ~np.isfinite(value) | (value < -1e-9) | (value > bound * (1 + 1e-6) + 1e-12)
    if abs(a - 1) < 1e-4:
        bad[:] = True
    if bad.any():
        value = value.copy()
        value[bad] = _expected_if_alive_quadrature(params, t[bad], x[bad], T[bad])
    return np.clip(value, 0.0, None).reshape(shape)


def _expected_if_alive_quadrature(params: BGNBDParams, t, x, T, nodes: int = 200) -> NDArray:
    """The same expectation as E_p[(1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p].

    Given alive at T, p ~ Beta(a, b + x) and lambda ~ Gamma(r + x, alpha + T) independently,
    and an alive customer with (lambda, p) buys (1 - exp(-lambda p t)) / p in expectation
    (the paper's E[X(t) | lambda, p]); integrating lambda out gives the integrand.
    Gauss-Jacobi nodes carry the Beta weight exactly, so a < 1 (a singular density at p = 0)
    is handled.
    """
    r, alpha, a = params.r, params.alpha, params.a
    out = np.empty(len(x))
    for xv in np.unique(x):
        idx = np.flatnonzero(x == xv)
        s, weight = gauss_jacobi(nodes, params.b + xv - 1, a - 1)  # (1-s)^(b+x-1) (1+s)^(a-1)
        p = (1 + s) / 2
        ratio = p[None, :] * t[idx, None] / (alpha + T[idx, None])
        g = -np.expm1(-(r + xv) * np.log1p(ratio)) / p[None, :]
        out[idx] = (g * weight).sum(axis=1)
    return out


def gauss_jacobi(n: int, alpha: float, beta: float) -> tuple[NDArray, NDArray]:
    """Gauss-Jacobi nodes on (-1, 1) for the weight (1-s)^alpha (1+s)^beta, with weights
    that sum to 1.

    Golub-Welsch: the nodes are the eigenvalues of the monic Jacobi polynomials' recurrence
    matrix and the weights the squared first components of its eigenvectors. scipy's
    ``roots_jacobi`` scales those by the weight's integral, 2^(alpha+beta+1) B(alpha+1,
    beta+1), which overflows to infinity once alpha + beta passes ~1,020 (a customer with
    about a thousand orders), turning every prediction that needs quadrature into NaN;
    normalised weights are all the expectation needs.
    """
    k = np.arange(n, dtype=np.float64)
    ab = alpha + beta
    two_k_ab = 2 * k + ab
    with np.errstate(divide="ignore", invalid="ignore"):
        diagonal = (beta**2 - alpha**2) / (two_k_ab * (two_k_ab + 2))
    diagonal[0] = (beta - alpha) / (ab + 2)
    k1 = k[1:]
    t = 2 * k1 + ab
    with np.errstate(divide="ignore", invalid="ignore"):
        off_squared = 4 * k1 * (k1 + alpha) * (k1 + beta) * (k1 + ab) / (t**2 * (t + 1) * (t - 1))
    # k = 1 with the factor (1 + alpha + beta) cancelled: 0/0 when alpha + beta = -1
    off_squared[0] = 4 * (1 + alpha) * (1 + beta) / ((2 + ab) ** 2 * (3 + ab))
    off = np.sqrt(off_squared)
    nodes, vectors = eigh_tridiagonal(diagonal, off)
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def conditional_expected_purchases(
    params: BGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (the paper's E[Y(t) | ...])."""
    t_, x, t_x, age = _arrays(t, frequency, recency, T)
    return probability_alive(params, x, t_x, age) * _expected_if_alive(params, t_, x, age)


def expected_purchases(params: BGNBDParams, t: ArrayLike) -> NDArray[np.float64]:
    """E[X(t)]: expected repeat purchases in (0, t] of a new customer (the paper's E[X(t)]).

    It is the conditional expectation at x = t_x = T = 0, where P(alive) = 1.
    """
    (t_,) = _arrays(t)
    zero = np.zeros_like(t_)
    return _expected_if_alive(params, t_, zero, zero)


def probability_purchase_within(
    params: BGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """P(at least one purchase in (T, T + t] | x, t_x, T).

    Dropout only happens right after a purchase, so an alive customer's next purchase comes
    after an Exponential(lambda) wait, lambda ~ Gamma(r + x, alpha + T) a posteriori: the wait
    is Lomax, P(W > t) = ((alpha + T) / (alpha + T + t))^(r + x).
    """
    t_, x, t_x, age = _arrays(t, frequency, recency, T)
    survive = np.exp(
        (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + age + t_))
    )
    return probability_alive(params, x, t_x, age) * (1 - survive)


def median_time_to_next_purchase(
    params: BGNBDParams, frequency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """Median wait from T to the next purchase of a customer who is still alive.

    The Lomax median (alpha + T) (2^(1/(r+x)) - 1). We condition on being alive because the
    unconditional wait is infinite with probability 1 - P(alive) and has no median when
    P(alive) < 1/2; report it next to P(alive) rather than folding the two together.
    """
    x, age = _arrays(frequency, T)
    return (params.alpha + age) * np.expm1(np.log(2.0) / (params.r + x))


__all__ = [
    "BGNBDFit",
    "BGNBDParams",
    "conditional_expected_purchases",
    "expected_purchases",
    "fit_bgnbd",
    "loglikelihood",
    "median_time_to_next_purchase",
    "probability_alive",
    "probability_purchase_within",
]
