"""Metric definitions compiled to one DuckDB query that returns sufficient statistics.

The query never brings per-user rows into Python. It

1. finds each unit's first ``Experiment Viewed`` of the experiment (the unit is the user id;
   an event without one belongs to the user its anonymous id was first seen with on any
   event that carries both, before the analysis end, else to the anonymous id: a visitor
   exposed before logging in is one unit with the orders they place after; units seen in
   more than one variation are counted and left out), with its platform
   (``context.device.type``, else ``context.os.name``) and whether they are *returning* (any
   event in the 30 days before first exposure);
2. joins the units' events in ``[first exposure - lookback, first exposure + window)`` once and
   reduces them per unit to every metric's value after exposure (within the metric's window
   and before the analysis end) and before it (the CUPED covariate, over ``lookback_days``);
3. caps per-unit values (absolute, or at a percentile of the non-zero values), and
4. sums per (variation, exposure day, platform, new/returning): ``n`` and, per metric, the
   sums, sums of squares and cross-products the stats engine needs.

Everything after that (overall, per dimension, cumulative by exposure day) is additions of
these small groups in :mod:`kirana.experiments.reports`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kirana.experiments.exposures import EXPOSURE_EVENT
from kirana.experiments.metrics import Metric

RETURNING_DAYS = 30
_ONE = "1::DOUBLE"  # a bare 1.0 is DECIMAL in DuckDB, and DECIMAL sums are 128-bit: slower
GROUP_COLUMNS = ("variation", "day", "platform", "is_returning")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _num(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return repr(float(x))


def _json_path(path: str) -> str:
    return _lit("$" + "".join(f'."{part}"' for part in path.split(".")))


def property_paths(metrics: Sequence[Metric]) -> dict[str, int]:
    """Every property path the metrics read, numbered from 1: the query parses each event's
    properties once into a list (``f.pv``) instead of once per metric."""
    paths: dict[str, int] = {}
    for m in metrics:
        for path in (*m.value_paths, *m.denominator_paths, *(m.filter or {})):
            paths.setdefault(path, len(paths) + 1)
    return paths


def _prop_number(paths: Sequence[str], index: dict[str, int]) -> str:
    parts = [f"TRY_CAST(f.pv[{index[p]}] AS DOUBLE)" for p in paths]
    return (
        f"coalesce({', '.join(parts)}, 0::DOUBLE)"
        if len(parts) > 1
        else f"coalesce({parts[0]}, 0::DOUBLE)"
    )


def _filter(metric: Metric, index: dict[str, int]) -> str:
    conds = []
    for path, want in (metric.filter or {}).items():
        got = f"f.pv[{index[path]}]"
        if isinstance(want, bool):
            conds.append(f"{got} = {_lit('true' if want else 'false')}")
        elif isinstance(want, int | float):
            conds.append(f"TRY_CAST({got} AS DOUBLE) = {_num(want)}")
        else:
            conds.append(f"{got} = {_lit(want)}")
    return "".join(f" AND {c}" for c in conds)


@dataclass(frozen=True)
class MetricColumns:
    """Names of a metric's per-unit columns in the query (``i`` = its position)."""

    i: int

    @property
    def post(self) -> str:
        return f"m{self.i}"

    @property
    def pre(self) -> str:
        return f"p{self.i}"

    @property
    def den(self) -> str:
        return f"d{self.i}"


def _per_unit(metric: Metric, col: MetricColumns, cuped: bool, index: dict[str, int]) -> list[str]:
    """Per-unit aggregate expressions (post value, pre value, ratio denominator)."""
    window = round(metric.window_hours * 3600e6)
    post = f"f.ts >= u.first_at AND f.ts < u.first_at + to_microseconds({window}) AND f.ts < $end"
    pre = "f.ts >= u.first_at - to_microseconds($lookback_us) AND f.ts < u.first_at"
    match = f"f.event = {_lit(metric.event)}{_filter(metric, index)}"
    if metric.type == "binomial":
        value, agg = _ONE, "max"
    elif metric.type == "count":
        value, agg = _ONE, "sum"
    else:
        value, agg = _prop_number(metric.value_paths, index), "sum"
    out = [
        f"coalesce({agg}(CASE WHEN {match} AND {post} THEN {value} END), 0::DOUBLE) AS {col.post}"
    ]
    if cuped:
        out.append(
            f"coalesce({agg}(CASE WHEN {match} AND {pre} THEN {value} END), 0::DOUBLE) AS {col.pre}"
        )
    if metric.type == "ratio":
        assert metric.denominator_event is not None
        den_value = (
            _prop_number(metric.denominator_paths, index)
            if metric.denominator_value is not None
            else _ONE
        )
        den_match = f"f.event = {_lit(metric.denominator_event)}"
        out.append(
            f"coalesce(sum(CASE WHEN {den_match} AND {post} THEN {den_value} END), 0::DOUBLE) "
            f"AS {col.den}"
        )
    return out


def _capped(metric: Metric, col: MetricColumns, cuped: bool) -> tuple[list[str], str | None]:
    """Capped value expressions, and the percentile expression for the caps row if any."""
    names = [col.post] + ([col.pre] if cuped else [])
    cap = metric.cap
    if cap is None:
        return [f"{n} AS {n}" for n in names] + _den(metric, col), None
    if cap.type == "absolute":
        bound = _num(cap.value)
        return [f"least({n}, {bound}) AS {n}" for n in names] + _den(metric, col), None
    bound = f"caps.c{col.i}"
    percentile = (
        f"coalesce(quantile_cont({col.post}, {_num(cap.value)}) "
        f"FILTER (WHERE {col.post} > 0), 0::DOUBLE) AS c{col.i}"
    )
    # A unit with no non-zero values leaves the cap at 0; then nothing is capped.
    capped = [f"CASE WHEN {bound} > 0 THEN least({n}, {bound}) ELSE {n} END AS {n}" for n in names]
    return capped + _den(metric, col), percentile


def _den(metric: Metric, col: MetricColumns) -> list[str]:
    return [f"{col.den} AS {col.den}"] if metric.type == "ratio" else []


def _sums(metric: Metric, col: MetricColumns, cuped: bool) -> list[str]:
    y, x, d = col.post, col.pre, col.den
    out = [f"sum({y}) AS {y}_sum", f"sum({y} * {y}) AS {y}_ss"]
    if cuped:
        out += [f"sum({x}) AS {x}_sum", f"sum({x} * {x}) AS {x}_ss", f"sum({y} * {x}) AS {y}_x"]
    if metric.type == "ratio":
        out += [f"sum({d}) AS {d}_sum", f"sum({d} * {d}) AS {d}_ss", f"sum({y} * {d}) AS {y}_xd"]
    return out


def uses_cuped(metric: Metric, lookback_days: float) -> bool:
    """CUPED needs a pre-period and a mean-type metric (the engine has no ratio CUPED)."""
    return lookback_days > 0 and metric.type != "ratio"


def sufficient_stats_sql(metrics: Sequence[Metric], lookback_days: float) -> str:
    """The query; parameters ``$experiment``, ``$start``, ``$end`` (TIMESTAMPTZ) and
    ``$lookback_us``. One row per (variation, day, platform, is_returning) plus, in the
    ``variation IS NULL`` row, how many units were left out for multiple variations."""
    cols = [MetricColumns(i) for i in range(len(metrics))]
    cuped = [uses_cuped(m, lookback_days) for m in metrics]
    index = property_paths(metrics)
    per_unit, capped, sums, percentiles = [], [], [], []
    for metric, col, c in zip(metrics, cols, cuped, strict=True):
        per_unit += _per_unit(metric, col, c, index)
        exprs, pct = _capped(metric, col, c)
        capped += exprs
        if pct:
            percentiles.append(pct)
        sums += _sums(metric, col, c)
    caps_cte = f", caps AS (SELECT {', '.join(percentiles)} FROM per_unit)" if percentiles else ""
    caps_join = ", caps" if percentiles else ""
    platform = (
        "coalesce(json_extract_string(context, '$.device.type'), "
        "json_extract_string(context, '$.os.name'), 'unknown')"
    )
    pv = (
        f"json_extract_string(e.properties, [{', '.join(_json_path(p) for p in index)}])"
        if index
        else "NULL::VARCHAR[]"
    )
    history_us = f"greatest($lookback_us, {RETURNING_DAYS * 86_400_000_000})"
    return f"""
WITH identified AS MATERIALIZED (
    -- the anonymous ids of the analysed period's signed-out events, each with the first user
    -- it was seen with (ties: the smallest id); Segment's libraries send the anonymous id
    -- with every signed-in event, so without the semi-join this groups most of history
    SELECT anonymous_id, arg_min(user_id, (timestamp, user_id)) AS user_id
    FROM events
    WHERE user_id IS NOT NULL AND anonymous_id IS NOT NULL AND timestamp < $end
      AND anonymous_id IN (
          SELECT anonymous_id FROM events
          WHERE user_id IS NULL AND anonymous_id IS NOT NULL
            AND timestamp >= $start - to_microseconds({history_us}) AND timestamp < $end)
    GROUP BY 1
),
keyed AS NOT MATERIALIZED (
    SELECT coalesce(e.user_id, i.user_id, e.anonymous_id) AS unit,
           e.event, e.timestamp, e.properties, e.context
    FROM events e LEFT JOIN identified i ON i.anonymous_id = e.anonymous_id
),
exposed AS MATERIALIZED (
    SELECT unit,
           min(timestamp) AS first_at,
           arg_min(json_extract_string(properties, '$.variation_id'), timestamp) AS variation,
           count(DISTINCT json_extract_string(properties, '$.variation_id')) AS variations,
           arg_min({platform}, timestamp) AS platform
    FROM keyed
    WHERE event = {_lit(EXPOSURE_EVENT)}
      AND json_extract_string(properties, '$.experiment_id') = $experiment
      AND timestamp >= $start AND timestamp < $end
      AND unit IS NOT NULL
    GROUP BY 1
),
units AS (SELECT * FROM exposed WHERE variations = 1),
facts AS (
    SELECT e.unit, e.event, {pv} AS pv, e.timestamp AS ts
    FROM keyed e
    WHERE e.timestamp >= $start - to_microseconds({history_us})
      AND e.timestamp < $end
      AND e.event <> {_lit(EXPOSURE_EVENT)}
      AND e.unit IN (SELECT unit FROM units)
),
per_unit AS MATERIALIZED (
    SELECT u.unit, any_value(u.variation) AS variation,
           CAST(any_value(u.first_at) AS DATE) AS day, any_value(u.platform) AS platform,
           coalesce(bool_or(f.ts < u.first_at
                            AND f.ts >= u.first_at - to_microseconds({history_us})), false)
             AS is_returning{"".join(", " + e for e in per_unit)}
    FROM units u LEFT JOIN facts f ON f.unit = u.unit
    GROUP BY u.unit
){caps_cte},
capped AS (
    SELECT variation, day, platform, is_returning{"".join(", " + e for e in capped)}
    FROM per_unit{caps_join}
)
SELECT variation, day, platform, is_returning, count(*) AS n{"".join(", " + e for e in sums)}
FROM capped GROUP BY ALL
UNION ALL
SELECT NULL, NULL, NULL, NULL, count(*){", NULL" * len(sums)}
FROM exposed WHERE variations > 1
"""


@dataclass
class SufficientRows:
    """The query's result as columns (name -> list), small: one row per group."""

    columns: dict[str, list[Any]]
    multiple_variations: int

    def __len__(self) -> int:
        return len(self.columns.get("n", []))


def query_sufficient_stats(
    conn: Any,
    experiment: str,
    metrics: Sequence[Metric],
    *,
    start: datetime,
    end: datetime,
    lookback_days: float,
) -> SufficientRows:
    """Run :func:`sufficient_stats_sql` on a DuckDB connection with an ``events`` view."""
    sql = sufficient_stats_sql(metrics, lookback_days)
    params = {
        "experiment": experiment,
        "start": start,
        "end": end,
        "lookback_us": int(timedelta(days=lookback_days) / timedelta(microseconds=1)),
    }
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    multiple = 0
    kept = []
    for row in rows:
        if row[0] is None:
            multiple = int(row[names.index("n")])
        else:
            kept.append(row)
    columns = {name: [r[i] for r in kept] for i, name in enumerate(names)}
    return SufficientRows(columns, multiple)


__all__ = [
    "GROUP_COLUMNS",
    "MetricColumns",
    "SufficientRows",
    "query_sufficient_stats",
    "sufficient_stats_sql",
    "uses_cuped",
]
