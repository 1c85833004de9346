"""Small numeric helpers shared by the engine.

Every formula is written elementwise with numpy so that a caller can pass arrays of sufficient
statistics (one element per simulated experiment, segment or day) and get arrays back. That is
what lets the simulation studies run thousands of experiments through the real public API.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from kirana.experiments.stats.errors import StatsInputError

Real: TypeAlias = float | np.ndarray
"""A float, or a numpy array of floats for batch (vectorised) use."""


def to_real(value: object, field: str) -> Real:
    """Coerce to float (or float array) and refuse NaN / infinity, naming the field."""
    if isinstance(value, bool):
        raise StatsInputError(field, "must be a number, not a boolean")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise StatsInputError(field, f"must be a number (got {value!r})") from None
    if not np.all(np.isfinite(arr)):
        raise StatsInputError(field, "must be a finite number")
    return float(arr) if arr.ndim == 0 else arr


def first_bad(values: Real, bad: np.ndarray | bool) -> float:
    """The first offending element, to quote in an error message."""
    bad_arr = np.asarray(bad)
    vals = np.broadcast_to(np.asarray(values, dtype=float), bad_arr.shape)
    return float(vals[bad_arr][0]) if bad_arr.ndim else float(vals)


def check_alpha(alpha: float, field: str = "alpha") -> float:
    """Alpha is a probability strictly between 0 and 1."""
    value = to_real(alpha, field)
    if np.ndim(value) or not 0.0 < value < 1.0:
        raise StatsInputError(field, f"must be a number between 0 and 1 exclusive (got {alpha!r})")
    return float(value)


def safe_ratio(num: Real, den: Real) -> Real:
    """num / den, NaN where den == 0 (an undefined quantity, reported as null)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        out = np.where(np.asarray(den) != 0, np.divide(num, den), np.nan)
    return squeeze(out)


def standardise(estimate: Real, se: Real) -> Real:
    """estimate / se with the degenerate cases made explicit.

    se == 0 happens for real (a binomial metric with no conversions in either arm): an exact
    zero difference is no evidence (z = 0); a non-zero difference with no noise is infinite
    evidence (z = +/-inf). NaN estimates stay NaN.
    """
    est = np.asarray(estimate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.asarray(se) > 0, est / se, np.where(est == 0, 0.0, np.sign(est) * np.inf))
    return squeeze(z)


def squeeze(value: np.ndarray | float) -> Real:
    """0-d arrays back to plain floats so scalar callers get scalars."""
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else arr
