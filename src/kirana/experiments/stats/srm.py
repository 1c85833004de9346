"""Sample-ratio mismatch: did traffic split the way the experiment was configured?

A mismatch (e.g. 50.9% / 49.1% when 50/50 was configured, on 100k users) almost always means
a bug in assignment or logging that biases every metric, so it is checked before reading any
result. Pearson's chi-square goodness-of-fit test against the configured weights, with a
strict default threshold (p < 0.001) because it runs on every experiment, every day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from kirana.experiments.stats._numeric import to_real
from kirana.experiments.stats.errors import StatsInputError

DEFAULT_SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    """Chi-square statistic, its p-value, the expected counts, and whether to raise the alarm."""

    statistic: float
    df: int
    p_value: float
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    threshold: float
    mismatch: bool


def srm_test(
    counts: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SrmResult:
    """Test observed units per variation against the configured ``weights`` (default equal).

    Weights need not sum to 1; they are normalised. ``mismatch`` is ``p_value < threshold``.
    """
    obs = np.array([to_real(c, f"counts[{i}]") for i, c in enumerate(counts)], dtype=float)
    if obs.size < 2:
        raise StatsInputError("counts", "need at least two variations")
    if np.any(obs < 0):
        raise StatsInputError("counts", "must be non-negative")
    if weights is None:
        w = np.full(obs.size, 1.0 / obs.size)
    else:
        w = np.array([to_real(x, f"weights[{i}]") for i, x in enumerate(weights)], dtype=float)
        if w.size != obs.size:
            raise StatsInputError(
                "weights", f"expected {obs.size} weights (one per variation), got {w.size}"
            )
        if np.any(w <= 0):
            raise StatsInputError("weights", "must all be positive")
        w = w / w.sum()
    if not 0 < threshold < 1:
        raise StatsInputError("srm_threshold", "must be between 0 and 1 exclusive")
    total = obs.sum()
    expected = total * w
    if total == 0:
        statistic, p = 0.0, 1.0
    else:
        statistic = float(np.sum((obs - expected) ** 2 / expected))
        p = float(special.chdtrc(obs.size - 1, statistic))
    return SrmResult(
        statistic=statistic,
        df=obs.size - 1,
        p_value=p,
        observed=tuple(obs.tolist()),
        expected=tuple(expected.tolist()),
        threshold=threshold,
        mismatch=p < threshold,
    )
