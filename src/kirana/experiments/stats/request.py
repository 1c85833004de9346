"""Parse and validate the JSON request that :func:`analyze` accepts.

Kept apart from the maths so every error can name its field the way the caller wrote it,
e.g. ``metrics[2].variations[1].sum_squares: variance would be negative (...)``.
The request format itself is documented in :mod:`kirana.experiments.stats.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kirana.experiments.stats.bayesian import RELATIVE_SCALES, NormalPrior
from kirana.experiments.stats.corrections import Correction
from kirana.experiments.stats.errors import StatsInputError
from kirana.experiments.stats.sequential import DEFAULT_TUNING_N, MIXTURES
from kirana.experiments.stats.srm import DEFAULT_SRM_THRESHOLD
from kirana.experiments.stats.sufficient import CupedStats, RatioStats, SampleStats

# request key -> dataclass field, per metric type (None: optional key)
VARIATION_FIELDS: dict[str, dict[str, str]] = {
    "mean": {"n": "n", "sum": "sum", "sum_squares": "sum_squares"},
    "binomial": {"n": "n", "sum": "sum", "sum_squares": "sum_squares"},
    "ratio": {
        "n": "n",
        "numerator_sum": "num_sum",
        "numerator_sum_squares": "num_sum_squares",
        "denominator_sum": "den_sum",
        "denominator_sum_squares": "den_sum_squares",
        "cross_sum": "cross_sum",
    },
    "cuped": {
        "n": "n",
        "sum": "post_sum",
        "sum_squares": "post_sum_squares",
        "pre_sum": "pre_sum",
        "pre_sum_squares": "pre_sum_squares",
        "cross_sum": "cross_sum",
    },
}
VARIATION_FIELDS["binomial_cuped"] = VARIATION_FIELDS["cuped"]
_CLASSES = {
    "mean": SampleStats,
    "binomial": SampleStats,
    "ratio": RatioStats,
    "cuped": CupedStats,
    "binomial_cuped": CupedStats,
}
_ZERO_ONE = {"binomial": (("sum", "sum_squares"),)}
_ZERO_ONE["binomial_cuped"] = (("sum", "sum_squares"), ("pre_sum", "pre_sum_squares"))
"""Metric types whose values are 0/1: each (sum, sum of squares) pair must be equal."""
OPTIONS: dict[str, tuple[str, ...]] = {
    "binomial_variance": ("population", "sample"),
    "sequential_mixture": MIXTURES,
    "bayesian_relative": RELATIVE_SCALES,
    "cuped_theta": ("pair", "within"),
}
"""Kirana's named refinements; the first choice of each is the default and equals gbstats."""
SETTINGS_KEYS = frozenset(
    {"engine", "sequential", "sequential_tuning_n", "alpha", "weights", "correction"}
    | {"srm_threshold", "prior"}
    | set(OPTIONS)
)
METRIC_KEYS = frozenset({"name", "metric_type", "variations"})
ENGINES = ("frequentist", "bayesian")

Stats = SampleStats | RatioStats | CupedStats


@dataclass(frozen=True)
class MetricRequest:
    name: str | None
    metric_type: str
    names: tuple[str, ...]
    stats: tuple[Stats, ...]


@dataclass(frozen=True)
class AnalysisRequest:
    engine: str
    sequential: bool
    tuning_n: float
    alpha: float
    weights: tuple[float, ...] | None
    correction: Correction
    srm_threshold: float
    absolute_prior: NormalPrior | None
    relative_prior: NormalPrior | None
    metrics: tuple[MetricRequest, ...]
    multi: bool
    binomial_variance: str = "population"
    sequential_mixture: str = "howard"
    bayesian_relative: str = "linear"
    cuped_theta: str = "pair"


def _unknown(obj: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise StatsInputError(
                f"{where}{key}", f"unknown field (expected one of: {', '.join(sorted(allowed))})"
            )


def _number(value: Any, field: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StatsInputError(field, f"must be a finite number (got {value!r})")
    if not low < value < high:
        raise StatsInputError(field, f"must be between {low:g} and {high:g} exclusive")
    return float(value)


def _choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise StatsInputError(field, f"must be one of {', '.join(map(repr, options))}")
    return value


def _variation(raw: Any, metric_type: str, where: str, index: int) -> tuple[str, Stats]:
    if not isinstance(raw, Mapping):
        raise StatsInputError(where.rstrip("."), "must be an object")
    keys = VARIATION_FIELDS[metric_type]
    _unknown(raw, {"name", *keys}, where)
    name = raw.get("name", "control" if index == 0 else f"variation {index}")
    if not isinstance(name, str) or not name:
        raise StatsInputError(f"{where}name", "must be a non-empty string")
    values = {}
    optional = {squares for _, squares in _ZERO_ONE.get(metric_type, ())}
    for key, attr in keys.items():
        if key not in raw:
            if key in optional:
                continue
            raise StatsInputError(f"{where}{key}", "is required")
        values[attr] = _number(raw[key], f"{where}{key}")
    for total, squares in _ZERO_ONE.get(metric_type, ()):
        t_attr, s_attr = keys[total], keys[squares]
        values.setdefault(s_attr, values[t_attr])
        # (n < 2 is left to the dataclass, so that error wins: it is the more basic one)
        if values["n"] >= 2 and not 0 <= values[t_attr] <= values["n"]:
            rule = "conversions" if total == "sum" else "0/1 covariate sums"
            raise StatsInputError(f"{where}{total}", f"{rule} must be between 0 and n")
        if values[s_attr] != values[t_attr]:
            raise StatsInputError(
                f"{where}{squares}",
                f"must equal {total} for a {metric_type} metric (values are 0 or 1)",
            )
    try:
        stats = _CLASSES[metric_type](**values)
    except StatsInputError as exc:
        raise exc.within(where, {attr: key for key, attr in keys.items()}) from None
    return name, stats


def _metric(raw: Mapping[str, Any], where: str, default_type: Any) -> MetricRequest:
    metric_type = _choice(
        raw.get("metric_type", default_type), f"{where}metric_type", tuple(VARIATION_FIELDS)
    )
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise StatsInputError(f"{where}name", "must be a string")
    variations = raw.get("variations")
    if not isinstance(variations, list) or len(variations) < 2:
        raise StatsInputError(
            f"{where}variations", "must be a list of at least two variations (control first)"
        )
    parsed = [
        _variation(v, metric_type, f"{where}variations[{i}].", i) for i, v in enumerate(variations)
    ]
    names = tuple(n for n, _ in parsed)
    if len(set(names)) != len(names):
        raise StatsInputError(f"{where}variations", "variation names must be unique")
    return MetricRequest(name, metric_type, names, tuple(s for _, s in parsed))


def _prior(raw: Any, field: str) -> NormalPrior | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise StatsInputError(field, 'must be an object like {"mean": 0, "variance": 0.09}')
    _unknown(raw, {"mean", "variance"}, f"{field}.")
    mean = _number(raw.get("mean", 0.0), f"{field}.mean")
    variance = raw.get("variance")  # absent or null: flat
    if variance is not None:
        variance = _number(variance, f"{field}.variance", low=0.0)
    return NormalPrior(mean, math.inf if variance is None else variance)


def parse_request(request: Any) -> AnalysisRequest:
    """Validate a request document; raises :class:`StatsInputError` naming the field."""
    if not isinstance(request, Mapping):
        raise StatsInputError("request", "must be a JSON object")
    multi = "metrics" in request
    if multi and "variations" in request:
        raise StatsInputError("metrics", 'give either "metrics" or "variations", not both')
    _unknown(request, SETTINGS_KEYS | ({"metrics", "metric_type"} if multi else METRIC_KEYS), "")
    engine = _choice(request.get("engine", "frequentist"), "engine", ENGINES)
    sequential = request.get("sequential", False)
    if not isinstance(sequential, bool):
        raise StatsInputError("sequential", "must be true or false")
    if sequential and engine != "frequentist":
        raise StatsInputError("sequential", 'is only available with engine "frequentist"')
    options = tuple(c.value for c in Correction)
    correction = Correction(_choice(request.get("correction", "none"), "correction", options))
    if correction is not Correction.none and engine != "frequentist":
        raise StatsInputError("correction", 'applies to engine "frequentist" p-values only')
    prior = request.get("prior")
    if prior is not None and engine != "bayesian":
        raise StatsInputError("prior", 'is only used by engine "bayesian"')
    if prior is not None and not isinstance(prior, Mapping):
        raise StatsInputError("prior", 'must be an object with "absolute" and/or "relative"')
    _unknown(prior or {}, {"absolute", "relative"}, "prior.")
    weights = request.get("weights")
    if weights is not None:
        if not isinstance(weights, list):
            raise StatsInputError("weights", "must be a list of positive numbers")
        weights = tuple(_number(w, f"weights[{i}]", low=0.0) for i, w in enumerate(weights))
    if multi:
        raw_metrics = request["metrics"]
        if not isinstance(raw_metrics, list) or not raw_metrics:
            raise StatsInputError("metrics", "must be a non-empty list of metrics")
        metrics = []
        for i, m in enumerate(raw_metrics):
            if not isinstance(m, Mapping):
                raise StatsInputError(f"metrics[{i}]", "must be an object")
            _unknown(m, METRIC_KEYS, f"metrics[{i}].")
            metrics.append(_metric(m, f"metrics[{i}].", request.get("metric_type")))
    else:
        metrics = [_metric(request, "", request.get("metric_type"))]
    for i, metric in enumerate(metrics):
        if weights is not None and len(weights) != len(metric.names):
            where = f"metrics[{i}].variations" if multi else "variations"
            raise StatsInputError(
                "weights", f"has {len(weights)} entries but {where} has {len(metric.names)}"
            )
    return AnalysisRequest(
        engine=engine,
        sequential=sequential,
        tuning_n=_number(
            request.get("sequential_tuning_n", DEFAULT_TUNING_N), "sequential_tuning_n", low=0.0
        ),
        alpha=_number(request.get("alpha", 0.05), "alpha", low=0.0, high=1.0),
        weights=weights,
        correction=correction,
        srm_threshold=_number(
            request.get("srm_threshold", DEFAULT_SRM_THRESHOLD), "srm_threshold", low=0.0, high=1.0
        ),
        absolute_prior=_prior((prior or {}).get("absolute"), "prior.absolute"),
        relative_prior=_prior((prior or {}).get("relative"), "prior.relative"),
        metrics=tuple(metrics),
        multi=multi,
        **{key: _choice(request.get(key, opts[0]), key, opts) for key, opts in OPTIONS.items()},
    )
