"""Multiple-comparison corrections across every metric x variation comparison.

An experiment with 3 treatments and 10 metrics makes 30 comparisons; at alpha = 0.05 and no
true effects, 1.5 "wins" are expected by chance. Two standard remedies:

* Holm-Bonferroni controls the family-wise error rate (any false positive) and is uniformly
  more powerful than plain Bonferroni: sort p ascending, ``p_adj(i) = max_{j<=i} min(1,
  (m - j + 1) p(j))``.
* Benjamini-Hochberg controls the false discovery rate (expected share of false positives
  among the wins), which suits exploratory many-metric readouts: ``p_adj(i) = min_{j>=i}
  min(1, m p(j) / j)``.

Intervals: each comparison's interval is taken at the level its corrected test used
(:func:`comparison_alpha`), so it excludes zero exactly when the adjusted p-value is below
alpha. For Bonferroni that is the simultaneous alpha / m interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from kirana.experiments.stats.errors import StatsInputError


class Correction(StrEnum):
    none = "none"
    holm = "holm"
    bh = "bh"
    bonferroni = "bonferroni"


def _as_p(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise StatsInputError("p_values", "must be a list of probabilities in [0, 1]")
    return p


def bonferroni(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = _as_p(p_values)
    return np.minimum(1.0, p * p.size)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (q-values), in the input order."""
    p = _as_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    out = np.empty(m)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


def adjust(p_values: Sequence[float] | np.ndarray, method: Correction | str) -> np.ndarray:
    """Adjusted p-values for ``method`` ("none", "holm", "bh" or "bonferroni")."""
    method = Correction(method)
    if method is Correction.none:
        return _as_p(p_values).copy()
    fn = {Correction.holm: holm, Correction.bh: benjamini_hochberg}.get(method, bonferroni)
    return fn(p_values)


def comparison_alpha(alpha: float, p_value: float, p_adjusted: float, m: int) -> float:
    """The level at which one comparison's interval agrees with its corrected test.

    The correction multiplies this comparison's p-value by ``p_adjusted / p_value`` (m for
    Bonferroni; the step-down/step-up factor for Holm and BH), so the interval at
    ``alpha * p_value / p_adjusted`` excludes zero exactly when ``p_adjusted < alpha``: the
    verdict, the p-value and the interval then come from one test. For Bonferroni this is
    the simultaneous ``alpha / m`` interval. A zero p-value (no noise) has no factor to read;
    ``alpha / m`` is used, and the interval is a point away from zero either way.
    """
    if p_value > 0 and p_adjusted > 0:
        return alpha * min(1.0, p_value / p_adjusted)
    return alpha / max(m, 1)
