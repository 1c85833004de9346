"""Experiment reports: sufficient statistics in, per-metric results and time series out.

Pure (no I/O): :func:`build_report` adds up the small per-(variation, day, platform,
new/returning) groups from :mod:`kirana.experiments.metric_sql` into

* the overall result of every metric through :func:`kirana.experiments.stats.analyze` (with the
  experiment's engine, multiple-comparison correction across metrics x variations, CUPED when a
  pre-exposure covariate is available and informative), plus the SRM check;
* the cumulative effect by exposure day: on day *d*, the estimate over units first exposed on
  or before *d* (their metric values as of the analysis), which is what a daily look at the
  experiment would have shown had it been analysed with the same data; and
* breakdowns by platform and by new vs returning users (no correction: they are for
  exploring, and say so in the report).

:func:`render_table` prints a report for a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from kirana.experiments.metric_sql import MetricColumns, SufficientRows, uses_cuped
from kirana.experiments.metrics import Metric
from kirana.experiments.plan import ExperimentRecord
from kirana.experiments.stats import StatsInputError, analyze, srm_test
from kirana.experiments.stats.request import parse_request


class _Groups:
    """The query's rows as numpy columns, with sums per variation under a row mask."""

    def __init__(self, rows: SufficientRows, variations: Sequence[str]) -> None:
        self.variations = list(variations)
        index = {v: i for i, v in enumerate(self.variations)}
        raw = rows.columns.get("variation", [])
        self.var_index = np.array([index.get(v, -1) for v in raw], dtype=np.int64)
        self.cols = {
            k: np.asarray(v, dtype=np.float64)
            for k, v in rows.columns.items()
            if k not in ("variation", "day", "platform", "is_returning")
        }
        self.day = list(rows.columns.get("day", []))
        self.platform = list(rows.columns.get("platform", []))
        self.returning = list(rows.columns.get("is_returning", []))
        self.unknown_variation_units = int(
            self.cols.get("n", np.zeros(0))[self.var_index < 0].sum()
        )

    def totals(self, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        keep = self.var_index >= 0
        if mask is not None:
            keep &= mask
        k = len(self.variations)
        return {
            name: np.bincount(self.var_index[keep], weights=col[keep], minlength=k).astype(float)
            for name, col in self.cols.items()
        }


def _variation_entries(
    metric: Metric, col: MetricColumns, cuped: bool, t: dict[str, np.ndarray], names: list[str]
) -> tuple[str, list[dict[str, float]]]:
    y, x, d = col.post, col.pre, col.den
    n = t["n"]
    if cuped:
        sxx = t[f"{x}_ss"] - np.divide(t[f"{x}_sum"] ** 2, n, where=n > 0, out=np.zeros_like(n))
        cuped = bool(np.all(n > 0)) and float(sxx.sum()) > 1e-9 * max(
            1.0, float(t[f"{x}_ss"].sum())
        )
    out = []
    for j, name in enumerate(names):
        entry: dict[str, float] = {"name": name, "n": float(n[j])}  # type: ignore[dict-item]
        if metric.type == "ratio":
            entry |= {
                "numerator_sum": t[f"{y}_sum"][j],
                "numerator_sum_squares": t[f"{y}_ss"][j],
                "denominator_sum": t[f"{d}_sum"][j],
                "denominator_sum_squares": t[f"{d}_ss"][j],
                "cross_sum": t[f"{y}_xd"][j],
            }
        elif cuped:
            entry |= {
                "sum": t[f"{y}_sum"][j],
                "sum_squares": t[f"{y}_ss"][j],
                "pre_sum": t[f"{x}_sum"][j],
                "pre_sum_squares": t[f"{x}_ss"][j],
                "cross_sum": t[f"{y}_x"][j],
            }
        elif metric.type == "binomial":
            entry["sum"] = t[f"{y}_sum"][j]
        else:
            entry |= {"sum": t[f"{y}_sum"][j], "sum_squares": t[f"{y}_ss"][j]}
        out.append({k: (float(v) if not isinstance(v, str) else v) for k, v in entry.items()})
    kind = "ratio" if metric.type == "ratio" else "cuped" if cuped else metric.type
    kind = "binomial_cuped" if cuped and metric.type == "binomial" else kind
    kind = "mean" if kind in ("count", "sum") else kind
    return kind, out


def _settings(record: ExperimentRecord) -> dict[str, Any]:
    a = record.analysis
    out: dict[str, Any] = {"engine": a.engine, "alpha": a.alpha}
    if a.engine == "frequentist":
        out |= {"sequential": a.sequential, "correction": a.correction}
        if a.sequential:
            out["sequential_tuning_n"] = a.sequential_tuning_n
    out["weights"] = list(record.experiment.weights or ())
    return out


def _requests(
    record: ExperimentRecord, metrics: Sequence[Metric], t: dict[str, np.ndarray]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Analyse-ready metric entries, and for metrics that cannot be analysed, why."""
    names = [v.key for v in record.experiment.variations]
    settings = _settings(record)
    ok, errors = [], {}
    if "n" not in t or not t["n"].sum():
        return [], {m.key: "no exposures yet" for m in metrics}
    for i, metric in enumerate(metrics):
        cuped = uses_cuped(metric, record.analysis.lookback_days)
        kind, variations = _variation_entries(metric, MetricColumns(i), cuped, t, names)
        entry = {"name": metric.key, "metric_type": kind, "variations": variations}
        try:
            parse_request({**settings, **entry, "correction": "none"})
        except StatsInputError as exc:
            errors[metric.key] = f"not enough data yet ({exc})"
            continue
        ok.append(entry)
    return ok, errors


def _analyse_one(record: ExperimentRecord, entry: dict[str, Any]) -> dict[str, Any]:
    return analyze({**_settings(record), **entry, "correction": "none"})


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    """The per-variation numbers a chart needs, from one metric's analyze() result."""
    out: dict[str, Any] = {}
    for v in result["variations"]:
        # the plain mean for every arm; CUPED's adjusted mean beside it where there is one
        # (per comparison, only treatments have one), never mixed into the same series
        item: dict[str, Any] = {"n": v["n"], "mean": v["mean"]}
        if "adjusted_mean" in v:
            item["adjusted_mean"] = v["adjusted_mean"]
        for scale in ("absolute", "relative"):
            if scale in v:
                item[scale] = {"estimate": v[scale]["estimate"], "ci": v[scale]["ci"]}
        for key in ("p_value", "chance_to_beat_control"):
            if key in v:
                item[key] = v[key]
        out[v["name"]] = item
    return out


def _series(
    groups: _Groups, record: ExperimentRecord, metrics: Sequence[Metric]
) -> dict[str, list[dict[str, Any]]]:
    days = sorted({d for d in groups.day if d is not None})
    series: dict[str, list[dict[str, Any]]] = {m.key: [] for m in metrics}
    day_arr = np.array([d.toordinal() if d is not None else 0 for d in groups.day], dtype=np.int64)
    for day in days:
        t = groups.totals(day_arr <= day.toordinal())
        entries, errors = _requests(record, metrics, t)
        by_key = {e["name"]: e for e in entries}
        users = {v: int(n) for v, n in zip(groups.variations, t["n"], strict=True)}
        for metric in metrics:
            point: dict[str, Any] = {"date": day.isoformat(), "users": users}
            if metric.key in by_key:
                point["variations"] = _brief(_analyse_one(record, by_key[metric.key]))
            else:
                point["error"] = errors.get(metric.key)
            series[metric.key].append(point)
    return series


def _dimensions(
    groups: _Groups, record: ExperimentRecord, metrics: Sequence[Metric]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dim, values in (
        ("platform", groups.platform),
        ("user_type", ["returning" if r else "new" for r in groups.returning]),
    ):
        arr = np.array(values, dtype=object)
        out[dim] = {}
        for value in sorted({v for v in values if v is not None}):
            t = groups.totals(arr == value)
            entries, errors = _requests(record, metrics, t)
            results: dict[str, Any] = {e["name"]: _brief(_analyse_one(record, e)) for e in entries}
            results |= {k: {"error": v} for k, v in errors.items()}
            users = {v: int(n) for v, n in zip(groups.variations, t["n"], strict=True)}
            out[dim][str(value)] = {"users": users, "metrics": results}
    return out


def _verdict(decided: bool, positive: bool, higher_is_better: bool) -> str:
    if not decided:
        return "inconclusive"
    return "better" if positive == higher_is_better else "worse"


def summary_row(metric: Metric, v: dict[str, Any], engine: str, alpha: float) -> dict[str, Any]:
    """One metric x treatment line of the report, every shown number from the relative test.

    The console and the charts show the relative lift's interval, so the verdict, the p-value
    (or chance to beat control) and the colour all come from that same test: frequentist rows
    use the relative lift's p-value corrected across comparisons and its interval at the
    matching level; Bayesian rows call a winner when the relative lift's chance to beat control
    is beyond 1 - alpha/2 (or below alpha/2), exactly when the credible interval excludes zero.
    """
    rel, ab = v["relative"], v["absolute"]
    row: dict[str, Any] = {
        "metric": metric.key,
        "variation": v["name"],
        "guardrail": metric.guardrail,
        "scale": "relative",
        "relative_lift": rel["estimate"],
        "relative_ci": rel.get("ci_adjusted", rel["ci"]),
        "absolute_lift": ab["estimate"],
        "absolute_ci": ab.get("ci_adjusted", ab["ci"]),
        "interval_alpha": rel.get("ci_adjusted_alpha", alpha),
    }
    positive = (rel["estimate"] or 0.0) > 0
    if engine == "bayesian":
        chance = rel["chance_to_beat_control"]
        row["chance_to_beat_control"] = chance
        decided = chance is not None and (chance > 1 - alpha / 2 or chance < alpha / 2)
        positive = chance is not None and chance > 0.5
    else:
        row["p_value"] = rel["p_value"]
        row["p_value_adjusted"] = rel.get("p_value_adjusted", rel["p_value"])
        decided = bool(rel.get("significant"))
    row["verdict"] = _verdict(decided, positive, metric.higher_is_better)
    return row


def _summary(
    metrics: Sequence[Metric], analysed: dict[str, dict[str, Any]], engine: str, alpha: float
) -> list[dict[str, Any]]:
    return [
        summary_row(metric, v, engine, alpha)
        for metric in metrics
        if metric.key in analysed
        for v in analysed[metric.key]["variations"][1:]
    ]


def build_report(
    record: ExperimentRecord,
    metrics: Sequence[Metric],
    rows: SufficientRows,
    *,
    start: datetime,
    end: datetime,
    analysed_at: datetime,
) -> dict[str, Any]:
    """The whole report as JSON-ready data (see the module docstring)."""
    exp = record.experiment
    groups = _Groups(rows, [v.key for v in exp.variations])
    totals = groups.totals()
    n = totals["n"] if "n" in totals else np.zeros(len(exp.variations))
    srm = srm_test([float(x) for x in n], list(exp.weights or ())) if n.sum() > 0 else None
    entries, errors = _requests(record, metrics, totals)
    analysed: dict[str, dict[str, Any]] = {}
    if entries:
        result = analyze({**_settings(record), "metrics": entries})
        analysed = {m["name"]: m for m in result["metrics"]}
    metric_out = []
    for metric in metrics:
        item: dict[str, Any] = {
            "key": metric.key,
            "name": metric.name,
            "type": metric.type,
            "guardrail": metric.guardrail,
            "higher_is_better": metric.higher_is_better,
            "cuped": analysed.get(metric.key, {}).get("metric_type") in ("cuped", "binomial_cuped"),
        }
        if metric.key in analysed:
            item["result"] = analysed[metric.key]
        else:
            item["error"] = errors.get(metric.key, "no data")
        metric_out.append(item)
    return {
        "experiment": exp.key,
        "name": exp.name,
        "status": exp.status,
        "analysed_at": analysed_at.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "settings": {**_settings(record), "lookback_days": record.analysis.lookback_days},
        "variations": [
            {"key": v.key, "name": v.name, "weight": w, "users": int(n[i])}
            for i, (v, w) in enumerate(zip(exp.variations, exp.weights or (), strict=True))
        ],
        "excluded": {
            "multiple_variations": rows.multiple_variations,
            "unknown_variation": groups.unknown_variation_units,
        },
        "srm": None
        if srm is None
        else {"p_value": srm.p_value, "mismatch": srm.mismatch, "statistic": srm.statistic},
        "summary": _summary(metrics, analysed, record.analysis.engine, record.analysis.alpha),
        "metrics": metric_out,
        "cumulative": _series(groups, record, metrics),
        "dimensions": _dimensions(groups, record, metrics),
        "notes": [
            "cumulative: on each day, units first exposed by that day, with their metric values "
            "as of the analysis; no multiple-comparison correction",
            "dimensions are for exploration: no multiple-comparison correction",
        ],
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.2f}%"


def render_table(report: dict[str, Any]) -> str:
    """A plain-text rendering for terminals."""
    lines = [f"Experiment {report['experiment']} ({report['status']})"]
    users = ", ".join(f"{v['key']}={v['users']}" for v in report["variations"])
    lines.append(f"users: {users}")
    srm = report["srm"]
    if srm is not None:
        state = "MISMATCH - check assignment before trusting results" if srm["mismatch"] else "ok"
        lines.append(f"sample ratio: p={srm['p_value']:.4g} {state}")
    bayes = report["settings"]["engine"] == "bayesian"
    head = "chance to beat" if bayes else "p (adjusted)"
    lines.append("")
    lines.append(
        f"{'metric':<24}{'variation':<16}{'lift':>10}  {'interval':<22}{head:>15}  verdict"
    )
    for row in report["summary"]:
        lo, hi = row["relative_ci"]
        stat = row.get("chance_to_beat_control") if bayes else row.get("p_value_adjusted")
        stat_text = "n/a" if stat is None else f"{stat:.4f}"
        name = row["metric"] + (" (guardrail)" if row["guardrail"] else "")
        lines.append(
            f"{name:<24}{row['variation']:<16}{_pct(row['relative_lift']):>10}  "
            f"{'[' + _pct(lo) + ', ' + _pct(hi) + ']':<22}{stat_text:>15}  {row['verdict']}"
        )
    for m in report["metrics"]:
        if "error" in m:
            lines.append(f"{m['key']:<24}{m['error']}")
    return "\n".join(lines)


__all__ = ["build_report", "render_table", "summary_row"]
