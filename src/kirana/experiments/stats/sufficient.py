"""Per-variation sufficient statistics: what one warehouse ``GROUP BY variation`` returns.

Sums and sums of squares (and cross-products) are enough for every test in this package, so raw
events never leave the warehouse. Each dataclass validates itself on construction and raises a
:class:`StatsInputError` naming the field and the rule, because a negative variance caused by a
bad query should fail loudly rather than produce a confident-looking p-value.

Fields may be floats or equally-shaped numpy arrays (batch use; see ``_numeric``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from kirana.experiments.stats._numeric import Real, first_bad, safe_ratio, squeeze, to_real
from kirana.experiments.stats.errors import StatsInputError

_RTOL = 1e-9  # float64 sums of squares lose ~1e-16 relative; SQL engines may lose more.


def _coerce(obj: object) -> None:
    """Replace every field with a validated float (or float array)."""
    for f in fields(obj):  # type: ignore[arg-type]
        object.__setattr__(obj, f.name, to_real(getattr(obj, f.name), f.name))


def _check_n(n: Real) -> None:
    bad = np.asarray(n) < 2
    if np.any(bad):
        raise StatsInputError("n", f"must be at least 2 (got {first_bad(n, bad):g})")
    frac = np.asarray(n) != np.floor(n)
    if np.any(frac):
        raise StatsInputError("n", f"must be a whole number (got {first_bad(n, frac):g})")


def centred_squares(n: Real, total: Real, squares: Real, field: str, of: str = "sum") -> Real:
    """sum((x - mean)^2) from raw moments; refuses a materially negative result.

    Cancellation can make a true zero come out as +/-1e-12, so results within a relative
    tolerance of zero are set to zero; a larger negative means the inputs are inconsistent.
    """
    naive = np.divide(np.square(total), n)
    centred = np.subtract(squares, naive)
    tol = _RTOL * np.maximum(np.abs(squares), naive) + 1e-12
    bad = centred < -tol
    if np.any(bad):
        raise StatsInputError(
            field,
            f"variance would be negative ({field}={first_bad(squares, bad):.6g} "
            f"< {of}**2/n={first_bad(naive, bad):.6g})",
        )
    # within the tolerance of zero (either sign) it *is* zero: the digits are rounding noise
    return squeeze(np.where(centred <= tol, 0.0, centred))


def centred_cross(
    n: Real, sum_x: Real, sum_y: Real, cross: Real, sxx: Real, syy: Real, field: str
) -> Real:
    """sum((x - mean_x)(y - mean_y)), checked against Cauchy-Schwarz: |Sxy| <= sqrt(Sxx*Syy)."""
    sxy = np.subtract(cross, np.multiply(sum_x, sum_y) / np.asarray(n))
    bound = np.sqrt(np.multiply(sxx, syy))
    tol = 1e-6 * bound + _RTOL * np.abs(cross) + 1e-12
    bad = np.abs(sxy) > bound + tol
    if np.any(bad):
        raise StatsInputError(
            field,
            "implies a correlation outside [-1, 1] (covariance exceeds "
            "sqrt(variance_x * variance_y)); check the cross-product sum",
        )
    return squeeze(np.clip(sxy, -bound, bound))


@dataclass(frozen=True)
class SampleStats:
    """A count, sum or binomial metric: ``n`` units with ``sum`` and ``sum_squares`` of values.

    For a binomial (conversion) metric each value is 0 or 1, so ``sum == sum_squares ==
    conversions``; use :meth:`binomial` which also checks ``0 <= conversions <= n``.
    """

    n: Real
    sum: Real
    sum_squares: Real

    def __post_init__(self) -> None:
        _coerce(self)
        _check_n(self.n)
        centred_squares(self.n, self.sum, self.sum_squares, "sum_squares")

    @classmethod
    def binomial(cls, n: Real, conversions: Real) -> SampleStats:
        """Conversions out of n units (a 0/1 metric)."""
        conv = to_real(conversions, "sum")
        bad = (np.asarray(conv) < 0) | (np.asarray(conv) > np.asarray(n))
        if np.any(bad):
            raise StatsInputError("sum", "conversions must be between 0 and n")
        return cls(n, conv, conv)

    @property
    def mean(self) -> Real:
        return squeeze(np.divide(self.sum, self.n))

    @property
    def variance(self) -> Real:
        """Sample variance with the n - 1 denominator (as Welch's test expects)."""
        ss = centred_squares(self.n, self.sum, self.sum_squares, "sum_squares")
        return squeeze(np.divide(ss, np.subtract(self.n, 1)))


@dataclass(frozen=True)
class RatioStats:
    """A ratio metric (e.g. revenue per order): sum(numerator) / sum(denominator) over units.

    Units are the randomisation units (users); ``num``/``den`` are per-user totals, and
    ``cross_sum`` is sum(num * den) per user, needed for the delta-method variance because
    numerator and denominator are correlated within a user.
    """

    n: Real
    num_sum: Real
    num_sum_squares: Real
    den_sum: Real
    den_sum_squares: Real
    cross_sum: Real

    def __post_init__(self) -> None:
        _coerce(self)
        _check_n(self.n)
        self.centred()  # validates the moments
        bad = np.asarray(self.den_sum) == 0
        if np.any(bad):
            raise StatsInputError("den_sum", "must be non-zero (the ratio would be undefined)")

    @property
    def ratio(self) -> Real:
        return safe_ratio(self.num_sum, self.den_sum)

    def centred(self) -> tuple[Real, Real, Real]:
        """Centred (Snn, Sdd, Snd) sums: numerator, denominator and their cross-product."""
        n = self.n
        snn = centred_squares(n, self.num_sum, self.num_sum_squares, "num_sum_squares", "num_sum")
        sdd = centred_squares(n, self.den_sum, self.den_sum_squares, "den_sum_squares", "den_sum")
        snd = centred_cross(n, self.num_sum, self.den_sum, self.cross_sum, snn, sdd, "cross_sum")
        return snn, sdd, snd

    def covariance(self) -> tuple[Real, Real, Real]:
        """(var_num, var_den, cov_num_den), each with the n - 1 denominator."""
        snn, sdd, snd = self.centred()
        dof = np.subtract(self.n, 1)
        return squeeze(snn / dof), squeeze(sdd / dof), squeeze(snd / dof)


@dataclass(frozen=True)
class CupedStats:
    """A mean metric with a pre-experiment covariate, for CUPED regression adjustment.

    ``post_*`` are the metric during the experiment, ``pre_*`` the same metric (or any
    covariate unaffected by treatment) before it, ``cross_sum`` is sum(post * pre) per unit.
    """

    n: Real
    post_sum: Real
    post_sum_squares: Real
    pre_sum: Real
    pre_sum_squares: Real
    cross_sum: Real

    def __post_init__(self) -> None:
        _coerce(self)
        _check_n(self.n)
        self.centred()  # validates the moments

    def centred(self) -> tuple[Real, Real, Real]:
        """Centred (Syy, Sxx, Sxy) sums: post, pre and their cross-product."""
        syy = centred_squares(
            self.n, self.post_sum, self.post_sum_squares, "post_sum_squares", "post_sum"
        )
        sxx = centred_squares(
            self.n, self.pre_sum, self.pre_sum_squares, "pre_sum_squares", "pre_sum"
        )
        sxy = centred_cross(
            self.n, self.pre_sum, self.post_sum, self.cross_sum, sxx, syy, "cross_sum"
        )
        return syy, sxx, sxy

    @property
    def post_mean(self) -> Real:
        return squeeze(np.divide(self.post_sum, self.n))

    @property
    def pre_mean(self) -> Real:
        return squeeze(np.divide(self.pre_sum, self.n))
