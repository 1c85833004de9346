"""Metric definitions: what to measure per user after (and before) their first exposure.

A metric names a Segment event and how to reduce a user's events to one number:

* ``binomial`` - 1 if the user did the event within ``window_hours`` of first exposure, else 0;
* ``count`` - how many such events;
* ``sum`` - the sum of a property over them (``value``: a property path, or a list of paths
  where the first one present wins, e.g. ``["revenue", "total"]``);
* ``ratio`` - sum of ``value`` over ``event`` divided by the count (or sum of
  ``denominator_value``) of ``denominator_event`` per user, analysed with the delta method
  (revenue per order).

``cap`` winsorises each user's value: ``{"type": "absolute", "value": 500}`` or
``{"type": "percentile", "value": 0.99}`` (the percentile is taken over users with a non-zero
value, so a sparse metric is not capped at zero). ``guardrail`` marks metrics that must not get
worse (reported separately); ``higher_is_better`` says which direction is good.

Definitions are pure data (no I/O); :mod:`kirana.experiments.metric_sql` turns them into SQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec.structs import force_setattr

from kirana.experiments.assignment.validation import Checker, ExperimentDefinitionError, convert

MetricType = Literal["binomial", "count", "sum", "ratio"]
METRIC_TYPES: tuple[str, ...] = ("binomial", "count", "sum", "ratio")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
MAX_WINDOW_HOURS = 24 * 366


class Cap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Winsorise per-user values at an ``absolute`` value or a ``percentile`` (0-1)."""

    type: Literal["absolute", "percentile"]
    value: float


class Metric(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A metric definition; see the module docstring and ``docs/experiments.md``."""

    key: str
    type: str
    event: str
    name: str = ""
    value: str | tuple[str, ...] | None = None
    denominator_event: str | None = None
    denominator_value: str | tuple[str, ...] | None = None
    filter: dict[str, Any] | None = None
    window_hours: float = 72.0
    cap: Cap | None = None
    guardrail: bool = False
    higher_is_better: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def value_paths(self) -> tuple[str, ...]:
        return _paths(self.value)

    @property
    def denominator_paths(self) -> tuple[str, ...]:
        return _paths(self.denominator_value)


def _paths(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _path_list(check: Checker, field: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise check.fail(field, "must name at least one property path")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _PATH.match(item):
            raise check.fail(
                f"{field}[{i}]" if not isinstance(value, str) else field,
                f"must be a property path like 'revenue' or 'order.total', got {item!r}",
            )
    return value if isinstance(value, str) else tuple(items)


def _validate(m: Metric) -> None:
    check = Checker(f"metric {m.key!r}")
    check.key("key", m.key)
    if m.type not in METRIC_TYPES:
        raise check.fail("type", f"must be one of {list(METRIC_TYPES)} (got {m.type!r})")
    check.text("event", m.event)
    force_setattr(m, "name", m.name or m.key)
    force_setattr(m, "value", _path_list(check, "value", m.value))
    force_setattr(
        m, "denominator_value", _path_list(check, "denominator_value", m.denominator_value)
    )
    if m.type == "sum" and m.value is None:
        raise check.fail("value", "a sum metric needs the property to add up, e.g. 'revenue'")
    if m.type in ("binomial", "count") and m.value is not None:
        raise check.fail("value", f"a {m.type} metric counts events; remove value or use 'sum'")
    if m.type == "ratio":
        if m.value is None:
            raise check.fail("value", "a ratio metric needs the numerator property, e.g. 'revenue'")
        check.text("denominator_event", m.denominator_event)
    elif m.denominator_event is not None or m.denominator_value is not None:
        raise check.fail("denominator_event", "only ratio metrics have a denominator")
    if m.filter is not None:
        if not isinstance(m.filter, Mapping) or not m.filter:
            raise check.fail("filter", "must be an object of property path -> required value")
        for path, want in m.filter.items():
            if not isinstance(path, str) or not _PATH.match(path):
                raise check.fail("filter", f"keys must be property paths, got {path!r}")
            if not isinstance(want, str | int | float | bool):
                raise check.fail(f"filter.{path}", f"must be a string, number or bool: {want!r}")
    w = m.window_hours
    if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
        raise check.fail("window_hours", f"must be a number of hours, got {w!r}")
    if not 0 < w <= MAX_WINDOW_HOURS:
        raise check.fail("window_hours", f"must be in (0, {MAX_WINDOW_HOURS}] (got {w!r})")
    force_setattr(m, "window_hours", float(w))
    if m.cap is not None:
        cap = m.cap
        if not math.isfinite(cap.value):
            raise check.fail("cap.value", "must be a finite number")
        if cap.type == "absolute" and cap.value <= 0:
            raise check.fail("cap.value", f"an absolute cap must be positive (got {cap.value})")
        if cap.type == "percentile" and not 0 < cap.value < 1:
            raise check.fail("cap.value", f"a percentile cap must be in (0, 1) (got {cap.value})")
        if m.type == "binomial":
            raise check.fail("cap", "a binomial metric is 0 or 1 already; capping does nothing")


def parse_metric(data: Mapping[str, Any]) -> Metric:
    """Build a :class:`Metric` from its JSON form; errors name the field and the rule."""
    key = data.get("key") if isinstance(data, Mapping) else None
    where = f"metric {key!r}" if key is not None else "metric"
    if isinstance(data, Mapping):
        known = Metric.__struct_fields__
        for name in data:
            if name not in known:
                raise ExperimentDefinitionError(
                    where, str(name), f"unknown field (expected one of: {', '.join(known)})"
                )
    return convert(data, Metric, where)


__all__ = ["METRIC_TYPES", "Cap", "ExperimentDefinitionError", "Metric", "parse_metric"]
