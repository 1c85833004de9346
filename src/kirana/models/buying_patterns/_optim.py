"""Multi-start L-BFGS-B on log-parameters, shared by the BG/NBD and Gamma-Gamma fits.

Both likelihoods have all-positive parameters and flat ridges (r and alpha, or q and v, can
grow together with little change in fit), so we optimise in logs, try a few starting points
and keep the best optimum rather than trusting one local search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

_BOUND = 25.0  # |log parameter| <= 25: e^25 ~ 7e10 is "infinite" for every parameter here
_DEGENERATE = float(np.log(1e6))  # a shape parameter beyond 1e-6..1e6 is a degenerate limit


def fit_log_params(
    fun: Callable[..., tuple[float, NDArray]],
    starts: Sequence[Sequence[float]],
    args: tuple,
    penalizer: float,
    shapes: NDArray,
    names: Sequence[str],
) -> tuple[NDArray, bool, str, str | None]:
    """Minimise ``fun(log_theta, *args) + penalizer * sum(shapes * log_theta**2)``.

    ``fun`` returns (value, gradient in log-parameters); ``shapes`` marks the shape parameters
    (penalised, and watched for running off to 0 or infinity; the others are scales, whose
    size depends on units). Returns the best log-parameters, whether the search converged
    (scipy said so, or the gradient is ~0: L-BFGS-B often stops on a line-search failure when
    already at the optimum), scipy's message and a warning when the optimum is degenerate.
    """
    if penalizer < 0:
        raise ValueError("penalizer must be >= 0")

    def objective(theta: NDArray) -> tuple[float, NDArray]:
        value, grad = fun(theta, *args)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(theta)
        pen = penalizer * float((shapes * theta**2).sum())
        return value + pen, grad + 2 * penalizer * shapes * theta

    best = None
    for start in starts:
        theta0 = np.clip(np.log(np.asarray(start, dtype=float)), -_BOUND, _BOUND)
        res = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_BOUND, _BOUND)] * len(theta0),
            options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    _, grad = objective(best.x)
    converged = bool(best.success) or float(np.abs(grad).max()) < 1e-5
    converged &= bool(np.all(np.abs(best.x) < _BOUND - 1e-6))
    edge = [n for n, s, t in zip(names, shapes, best.x, strict=True) if s and abs(t) > _DEGENERATE]
    warning = None
    if edge:
        warning = (
            f"{', '.join(edge)} went to the edge of the parameter space (below 1e-6 or above "
            "1e6): the data cannot pin them down (e.g. nobody seems to drop out). Predictions "
            "are still usable; a small penalizer (e.g. 0.001) gives finite parameters"
        )
    return best.x, converged, str(best.message), warning


def standard_errors(
    fun: Callable[..., tuple[float, NDArray]], theta: NDArray, args: tuple, n: float
) -> NDArray | None:
    """Asymptotic standard errors of exp(theta) from the observed information.

    ``fun`` is the mean negative log-likelihood of n customers in log-parameters (no
    penalty); its Hessian comes from central differences of the analytic gradient. The
    delta method turns SE(log theta) into SE(theta) = theta * SE(log theta). Returns None when
    the Hessian is not positive definite (a flat or degenerate optimum).
    """
    k = len(theta)
    hessian = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = 1e-5
        hessian[:, i] = (fun(theta + step, *args)[1] - fun(theta - step, *args)[1]) / 2e-5
    hessian = (hessian + hessian.T) / 2 * n
    try:
        np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    return np.exp(theta) * np.sqrt(np.diag(np.linalg.inv(hessian)))
