"""``analyze(request) -> result``: the JSON-in, JSON-out entry point of the stats engine.

Request (a dict, e.g. parsed JSON); every key but ``metric_type`` and ``variations`` is optional::

    {
      "metric_type": "mean" | "binomial" | "ratio" | "cuped" | "binomial_cuped",
      "engine": "frequentist" (default) | "bayesian",
      "alpha": 0.05,                    # 1 - interval level; significance threshold
      "sequential": false,              # frequentist only: always-valid (peeking-safe) results
      "sequential_tuning_n": 5000,      # expected total units (control + one variation) at the
                                        # decision; fix it before launch
      "correction": "none" | "holm" | "bh" | "bonferroni",   # frequentist only
      "weights": [0.5, 0.5],            # configured traffic split, for the SRM check
      "srm_threshold": 0.001,
      # Kirana's refinements; the defaults (first) give gbstats' (GrowthBook's) numbers:
      "binomial_variance": "population" | "sample",   # p(1-p) | n/(n-1) p(1-p)
      "sequential_mixture": "howard" | "optimal",     # tuning constant of the mixture
      "bayesian_relative": "linear" | "lognormal",    # model of the relative lift
      "cuped_theta": "pair" | "within",               # theta per comparison | pooled slope
      "prior": {"relative": {"mean": 0, "variance": 0.09},   # bayesian only; on log(1 + lift)
                "absolute": {"mean": 0, "variance": 4.0}},   # on the difference in means
      "variations": [                   # control first; "name" optional
        {"name": "control", "n": 1000, "sum": 120, "sum_squares": 120},
        {"name": "treatment", "n": 1010, "sum": 140, "sum_squares": 140}
      ]
    }

Variation keys by ``metric_type`` (sums over randomisation units, e.g. users):

* ``mean``: ``n``, ``sum``, ``sum_squares`` (sum of per-unit values and of their squares);
* ``binomial``: ``n``, ``sum`` = conversions (``sum_squares`` optional, must equal ``sum``);
* ``ratio``: ``n``, ``numerator_sum``, ``numerator_sum_squares``, ``denominator_sum``,
  ``denominator_sum_squares``, ``cross_sum`` (sum of numerator * denominator per unit);
* ``cuped``: ``n``, ``sum``, ``sum_squares`` (the metric), ``pre_sum``, ``pre_sum_squares``
  (the pre-experiment covariate), ``cross_sum`` (sum of metric * covariate per unit);
* ``binomial_cuped``: as ``cuped`` for a 0/1 metric with a 0/1 covariate (the same conversion
  before the experiment); ``sum_squares`` and ``pre_sum_squares`` optional, equal to the sums.

Several metrics: put the settings at the top and ``"metrics": [{"name": ..., "metric_type":
..., "variations": [...]}, ...]``; the correction then spans all metric x variation comparisons.

Result: the settings echoed back, ``comparisons`` (how many were corrected over), and per metric
``srm`` and ``variations``. The control entry has ``name``, ``n``, ``mean`` (the ratio for ratio
metrics; for CUPED each treatment adds ``adjusted_mean`` and its ``theta``, or with
``cuped_theta: "within"`` every variation has ``adjusted_mean`` and the metric one
``theta``). Each other variation adds ``absolute`` and ``relative`` lifts, each with
``estimate``, ``ci`` [lower, upper], and either
``se``, ``p_value``, ``p_value_adjusted``, ``significant`` and, with a correction,
``ci_adjusted`` at ``ci_adjusted_alpha`` (frequentist) or ``sd``, ``chance_to_beat_control``
and ``risk`` {``treatment``, ``control``} (bayesian); at the variation level, frequentist
results repeat the absolute lift's ``p_value``, ``p_value_adjusted`` and ``significant``;
bayesian ones its ``chance_to_beat_control`` and ``risk``. Undefined numbers (a
relative lift over a zero control mean) are ``null``. Invalid requests raise
:class:`StatsInputError` whose message names the field, e.g.
``variations[1].sum_squares: variance would be negative (...)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kirana.experiments.stats.bayesian import BayesianResult, PosteriorLift, bayesian_test
from kirana.experiments.stats.corrections import Correction, adjust, comparison_alpha
from kirana.experiments.stats.frequentist import FrequentistResult, Lift, frequentist_test
from kirana.experiments.stats.moments import (
    Moments,
    binomial_moments,
    cuped_moments,
    moments_of,
    pair_theta,
    pooled_theta,
)
from kirana.experiments.stats.request import (
    OPTIONS,
    AnalysisRequest,
    MetricRequest,
    parse_request,
)
from kirana.experiments.stats.sequential import sequential_test
from kirana.experiments.stats.srm import srm_test
from kirana.experiments.stats.sufficient import CupedStats


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN and infinities (undefined quantities) become null."""
    x = float(value)
    return x if math.isfinite(x) else None


def _ci(lo: Any, hi: Any) -> list[float | None]:
    return [_num(lo), _num(hi)]


def _frequentist_lift(lift: Lift) -> dict[str, Any]:
    return {
        "estimate": _num(lift.estimate),
        "se": _num(lift.se),
        "ci": _ci(lift.ci_lower, lift.ci_upper),
        "p_value": _num(lift.p_value),
    }


def _bayesian_lift(lift: PosteriorLift) -> dict[str, Any]:
    return {
        "estimate": _num(lift.estimate),
        "sd": _num(lift.sd),
        "ci": _ci(lift.ci_lower, lift.ci_upper),
        "chance_to_beat_control": _num(lift.chance_to_beat_control),
        "risk": {"treatment": _num(lift.risk_treatment), "control": _num(lift.risk_control)},
        "method": lift.method,
    }


class _Comparison:
    """One treatment-vs-control comparison: its JSON entry and how to re-run it at any alpha."""

    def __init__(self, req: AnalysisRequest, control: Moments, treatment: Moments) -> None:
        self.req, self.control, self.treatment = req, control, treatment
        self.result = self.run(req.alpha)

    def run(self, alpha: float) -> FrequentistResult | BayesianResult:
        req = self.req
        if req.engine == "bayesian":
            return bayesian_test(
                self.control,
                self.treatment,
                alpha=alpha,
                absolute_prior=req.absolute_prior,
                relative_prior=req.relative_prior,
                relative_scale=req.bayesian_relative,
            )
        if req.sequential:
            return sequential_test(
                self.control,
                self.treatment,
                alpha=alpha,
                tuning_n=req.tuning_n,
                tuning_alpha=req.alpha,
                mixture=req.sequential_mixture,
            )
        return frequentist_test(self.control, self.treatment, alpha=alpha)

    def fields(self) -> dict[str, Any]:
        r = self.result
        if isinstance(r, BayesianResult):
            return {
                "absolute": _bayesian_lift(r.absolute),
                "relative": _bayesian_lift(r.relative),
                "chance_to_beat_control": _num(r.chance_to_beat_control),
                "risk": {"treatment": _num(r.risk_treatment), "control": _num(r.risk_control)},
            }
        return {
            "absolute": _frequentist_lift(r.absolute),
            "relative": _frequentist_lift(r.relative),
            "p_value": _num(r.p_value),
        }


def _pairs(
    req: AnalysisRequest, metric: MetricRequest, out: dict[str, Any]
) -> tuple[list[tuple[Moments, Moments]], list[dict[str, Any]]]:
    """(control, treatment) moments per comparison, and extra fields per variation entry.

    CUPED with ``cuped_theta: "pair"`` (gbstats) estimates one theta per comparison, so the
    control's adjusted mean differs by comparison and only the treatments show theirs.
    """
    stats = metric.stats
    extra: list[dict[str, Any]] = [{} for _ in stats]
    if metric.metric_type not in ("cuped", "binomial_cuped"):
        if metric.metric_type == "binomial" and req.binomial_variance == "population":
            moments = [binomial_moments(s) for s in stats]  # type: ignore[arg-type]
        else:
            moments = [moments_of(s) for s in stats]  # type: ignore[arg-type]
        return [(moments[0], m) for m in moments[1:]], extra
    groups: list[CupedStats] = list(stats)  # type: ignore[arg-type]
    binomial = metric.metric_type == "binomial_cuped" and req.binomial_variance == "population"
    if req.cuped_theta == "within":
        theta = pooled_theta(groups)
        moments = cuped_moments(groups, theta, binomial=binomial)
        out["theta"] = _num(theta)
        for e, m in zip(extra, moments, strict=True):
            e["adjusted_mean"] = _num(m.mean)
        return [(moments[0], m) for m in moments[1:]], extra
    pairs = []
    for e, group in zip(extra[1:], groups[1:], strict=True):
        theta = pair_theta(groups[0], group, binomial=binomial)
        control, treatment = cuped_moments(
            [groups[0], group], theta, relative_to_unadjusted=True, binomial=binomial
        )
        e |= {"adjusted_mean": _num(treatment.mean), "theta": _num(theta)}
        pairs.append((control, treatment))
    return pairs, extra


def _metric(req: AnalysisRequest, metric: MetricRequest) -> tuple[dict, list]:
    srm = srm_test([s.n for s in metric.stats], req.weights, threshold=req.srm_threshold)
    out: dict[str, Any] = {}
    if metric.name is not None:
        out["name"] = metric.name
    out["metric_type"] = metric.metric_type
    out["srm"] = {
        "p_value": srm.p_value,
        "statistic": srm.statistic,
        "mismatch": srm.mismatch,
        "observed": list(srm.observed),
        "expected": list(srm.expected),
    }
    pairs, extra = _pairs(req, metric, out)
    entries = []
    for i, (stats, name) in enumerate(zip(metric.stats, metric.names, strict=True)):
        entry: dict[str, Any] = {"name": name, "n": int(stats.n)}
        if isinstance(stats, CupedStats):
            entry["mean"] = _num(stats.post_mean)
        else:
            entry["mean"] = _num(pairs[0][0].mean if i == 0 else pairs[i - 1][1].mean)
        entry |= extra[i]
        entries.append(entry)
    comparisons = []
    for entry, (control, treatment) in zip(entries[1:], pairs, strict=True):
        comparison = _Comparison(req, control, treatment)
        entry |= comparison.fields()
        comparisons.append((entry, comparison))
    out["variations"] = entries
    return out, comparisons


def _correct_scale(
    req: AnalysisRequest, comparisons: list[tuple[dict, _Comparison]], scale: str
) -> None:
    """Adjust one scale's p-values across every comparison, with intervals from the same test.

    An undefined p-value (a relative lift over a zero control mean) still counts in the family
    (as p = 1) but is reported as null and never significant. The interval is re-run at the
    comparison's own corrected level (:func:`comparison_alpha`), so it excludes zero exactly
    when the adjusted p-value is below alpha.
    """
    raw = [getattr(c.result, scale).p_value for _, c in comparisons]
    defined = [math.isfinite(float(p)) for p in raw]
    p_values = [float(p) if ok else 1.0 for p, ok in zip(raw, defined, strict=True)]
    adjusted = adjust(p_values, req.correction)
    for (entry, comparison), p, p_adj, ok in zip(
        comparisons, p_values, adjusted, defined, strict=True
    ):
        lift = entry[scale]
        lift["p_value_adjusted"] = float(p_adj) if ok else None
        lift["significant"] = bool(ok and p_adj < req.alpha)
        if req.correction is not Correction.none:
            level = comparison_alpha(req.alpha, p, float(p_adj), len(comparisons))
            wide = getattr(comparison.run(level), scale)
            lift["ci_adjusted"] = _ci(wide.ci_lower, wide.ci_upper)
            lift["ci_adjusted_alpha"] = level


def _correct(req: AnalysisRequest, comparisons: list[tuple[dict, _Comparison]]) -> None:
    """Adjust p-values across every comparison of every metric, per scale (absolute, relative).

    The variation-level ``p_value``, ``p_value_adjusted`` and ``significant`` repeat the
    absolute lift's (the headline test); each lift carries its own, so a reader showing the
    relative interval takes the relative test's p-value and verdict with it.
    """
    if req.engine != "frequentist" or not comparisons:
        return
    for scale in ("absolute", "relative"):
        _correct_scale(req, comparisons, scale)
    for entry, _ in comparisons:
        entry["p_value_adjusted"] = entry["absolute"]["p_value_adjusted"]
        entry["significant"] = entry["absolute"]["significant"]


def analyze(request: Mapping[str, Any]) -> dict[str, Any]:
    """Analyse an experiment described by a JSON-ready request (see the module docstring)."""
    req = parse_request(request)
    metrics, comparisons = [], []
    for metric in req.metrics:
        out, comps = _metric(req, metric)
        metrics.append(out)
        comparisons.extend(comps)
    _correct(req, comparisons)
    result: dict[str, Any] = {"engine": req.engine, "alpha": req.alpha}
    if req.engine == "frequentist":
        result |= {"sequential": req.sequential, "correction": req.correction.value}
        if req.sequential:
            result["sequential_tuning_n"] = req.tuning_n
    result |= {key: getattr(req, key) for key in OPTIONS}
    result["comparisons"] = len(comparisons)
    if req.multi:
        result["metrics"] = metrics
    else:
        result |= metrics[0]
    return result
