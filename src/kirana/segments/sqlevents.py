"""SQL for "which events": the event scope and ``where`` filters, shared by traits and audiences."""

from __future__ import annotations

from datetime import datetime, timedelta

from kirana.segments.paths import json_path
from kirana.segments.rules import Filter
from kirana.segments.sqlvalues import as_array, lambda_name, literal, predicate, timestamp


def event_scope(
    alias: str, events: tuple[str, ...] | None, now: datetime, days: int | None
) -> list[str]:
    """Track events named ``events`` (None: any) at or before ``now``, in the last ``days``."""
    conds = [f"{alias}.type = 'track'", f"{alias}.timestamp <= {timestamp(now)}"]
    if events is not None:
        conds.append(f"{alias}.event IN ({', '.join(literal(e) for e in events)})")
    if days is not None:
        conds.append(f"{alias}.timestamp > {timestamp(now - timedelta(days=days))}")
    return conds


def filters_sql(where: tuple[Filter, ...], props: str, element: str | None = None) -> list[str]:
    """SQL for ``where`` on the properties expression ``props``.

    Filters on ``arr[].x`` test ``element`` when the caller unnests that array
    (a computed trait over ``arr[]...``); otherwise they hold when *one* element
    of the array satisfies all of them together.
    """
    conds = []
    nested = []
    for f in where:
        if not f.property.array:
            j = f"json_extract({props}, {literal(json_path(f.property.head))})"
            conds.append(predicate(j, f.op, f.value))
        else:
            nested.append(f)
    if nested and element is not None:
        conds.extend(predicate(_at(element, f.property.tail), f.op, f.value) for f in nested)
    elif nested:
        head = nested[0].property.head
        arr = f"json_extract({props}, {literal(json_path(head))})"
        el = lambda_name(arr)
        tests = " AND ".join(predicate(_at(el, f.property.tail), f.op, f.value) for f in nested)
        conds.append(
            f"coalesce(len(list_filter({as_array(arr)}, lambda {el}: {tests})) > 0, false)"
        )
    return conds


def _at(element: str, tail: tuple[str, ...]) -> str:
    return f"json_extract({element}, {literal(json_path(tail))})" if tail else element
