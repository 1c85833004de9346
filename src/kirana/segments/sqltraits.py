"""Computed traits compiled to SQL: ``(profile_id VARCHAR, value VARCHAR /* JSON */)``.

The query first lists *items*: one per matching event, or one per array
element when the property unnests (``products[].category``), with the value
the property selects (items whose value is missing are dropped when a
property is given). Each aggregation is then a plain GROUP BY over items.
Ordering and tie rules are spelled out in SQL (``ORDER BY`` inside the
aggregate) so results are deterministic, not whatever order DuckDB scans.
"""

from __future__ import annotations

from datetime import datetime

from kirana.segments.definitions import ComputedTrait
from kirana.segments.paths import json_path
from kirana.segments.sqlevents import event_scope, filters_sql
from kirana.segments.sqlvalues import NUMBER_TYPES, as_array, literal, present, timestamp

_DAY_US = 86_400_000_000
_TEXT = "CAST(v AS VARCHAR)"


def _items(trait: ComputedTrait, now: datetime) -> str:
    conds = event_scope("e", trait.events, now, trait.window_days)
    prop = trait.property
    unnest = ""
    element = None
    if prop is None:
        value, index = "CAST(NULL AS JSON)", "0"
    elif prop.array:
        arr = f"json_extract(e.properties, {literal(json_path(prop.head))})"
        unnest = f", unnest({as_array(arr)}) WITH ORDINALITY AS u(el, idx)"
        element, index = "u.el", "u.idx"
        tail = prop.tail
        value = f"json_extract(u.el, {literal(json_path(tail))})" if tail else "u.el"
    else:
        value = f"json_extract(e.properties, {literal(json_path(prop.head))})"
        index = "0"
    conds += filters_sql(trait.where, "e.properties", element)
    if prop is not None:
        conds.append(present(value))
    return (
        f"SELECT e.profile_id, e.timestamp AS ts, e.message_id AS mid, {index} AS idx, "
        f"{value} AS v FROM profile_events e{unnest} WHERE {' AND '.join(conds)}"
    )


def _aggregate(trait: ComputedTrait, now: datetime) -> str:
    agg = trait.aggregation
    if agg in ("count", "distinct_count"):
        n = "count(*)" if agg == "count" else f"count(DISTINCT {_TEXT})"
        return (
            "SELECT p.profile_id, CAST(coalesce(a.n, 0) AS VARCHAR) AS value FROM profiles p "
            f"LEFT JOIN (SELECT profile_id, {n} AS n FROM items GROUP BY profile_id) a "
            "ON a.profile_id = p.profile_id"
        )
    numbers = f"FROM items WHERE json_type(v) IN {NUMBER_TYPES} GROUP BY profile_id"
    if agg == "sum":
        value = (
            "CASE WHEN bool_and(json_type(v) <> 'DOUBLE') "
            "THEN CAST(sum(TRY_CAST(v AS HUGEINT)) AS VARCHAR) "
            "ELSE CAST(to_json(fsum(TRY_CAST(v AS DOUBLE))) AS VARCHAR) END"
        )
        return f"SELECT profile_id, {value} AS value {numbers}"
    if agg in ("min", "max"):
        direction = "" if agg == "min" else " DESC"
        order = f"TRY_CAST(v AS DOUBLE){direction}, {_TEXT}"
        return f"SELECT profile_id, first({_TEXT} ORDER BY {order}) AS value {numbers}"
    if agg in ("first", "last"):
        d = "" if agg == "first" else " DESC"
        order = f"ts{d}, mid{d}, idx{d}"
        return f"SELECT profile_id, first({_TEXT} ORDER BY {order}) AS value FROM items GROUP BY 1"
    if agg == "most_frequent":
        return (
            "SELECT profile_id, first(k ORDER BY n DESC, k) AS value FROM "
            f"(SELECT profile_id, {_TEXT} AS k, count(*) AS n FROM items GROUP BY 1, 2) "
            "GROUP BY profile_id"
        )
    if agg == "days_since_last":
        days = f"(epoch_us({timestamp(now)}) - epoch_us(max(ts))) // {_DAY_US}"
        return f"SELECT profile_id, CAST({days} AS VARCHAR) AS value FROM items GROUP BY 1"
    raise ValueError(f"unknown aggregation {agg!r}")


def compile_computed_trait(trait: ComputedTrait, now: datetime) -> str:
    """SQL with one row ``(profile_id, value JSON text)`` per profile that has a value at ``now``.

    ``count`` and ``distinct_count`` give every profile a value (0 when nothing
    matches); the others give none to a profile with nothing to aggregate.
    """
    return (
        f"WITH items AS ({_items(trait, now)}),\nagg AS ({_aggregate(trait, now)})\n"
        "SELECT profile_id, value FROM agg WHERE profile_id IN (SELECT profile_id FROM profiles)"
    )
