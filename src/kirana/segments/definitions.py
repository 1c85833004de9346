"""Typed computed traits and audiences, parsed from plain JSON-ready dicts.

Definitions arrive as JSON (API, CLI, the profile store) and are checked here
once, completely, so the compiler and the real-time evaluator can trust them:
anything wrong raises :class:`DefinitionError` naming the part and the rule.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kirana.segments import rules
from kirana.segments.conditions import (
    And,
    ComputedTraitIs,
    Condition,
    InAudience,
    Not,
    NotFollowedBy,
    Or,
    Performed,
    TraitIs,
    parse_conditions,
)
from kirana.segments.paths import PropertyPath, parse_path
from kirana.segments.rules import DefinitionError, Filter, check_keys, join
from kirana.segments.sqlcheck import check_sql

__all__ = [
    "AGGREGATIONS",
    "And",
    "Audience",
    "ComputedTrait",
    "ComputedTraitIs",
    "Condition",
    "DefinitionError",
    "Filter",
    "InAudience",
    "Not",
    "NotFollowedBy",
    "Or",
    "Performed",
    "TraitIs",
    "parse_audience",
    "parse_computed_trait",
]

AGGREGATIONS = (
    "count",
    "sum",
    "min",
    "max",
    "first",
    "last",
    "most_frequent",
    "distinct_count",
    "days_since_last",
)
_NO_PROPERTY = frozenset({"count", "days_since_last"})


class ComputedTrait(msgspec.Struct, frozen=True):
    """A per-profile value aggregated from its track events (``events`` None: all of them)."""

    name: str
    aggregation: str
    events: tuple[str, ...] | None = None
    property: PropertyPath | None = None
    window_days: int | None = None
    where: tuple[Filter, ...] = ()
    description: str = ""


class Audience(msgspec.Struct, frozen=True):
    """Either ``conditions`` (compiled) or ``sql`` (a SELECT returning ``profile_id``)."""

    name: str
    description: str = ""
    conditions: Condition | None = None
    sql: str | None = None
    depends_on: tuple[str, ...] = ()


def parse_computed_trait(obj: Any) -> ComputedTrait:
    """Validate a computed-trait dict; raises :class:`DefinitionError`."""
    subject = "computed trait"
    try:
        obj = check_keys(
            obj,
            "",
            ("name", "description", "aggregation", "event", "property", "window_days", "where"),
        )
        name = rules.name(obj.get("name"), "name")
        subject = f'computed trait "{name}"'
        aggregation = obj.get("aggregation")
        if aggregation not in AGGREGATIONS:
            rule = f"{rules.show(aggregation)} is not one of {', '.join(AGGREGATIONS)}"
            raise DefinitionError("aggregation", rule)
        events = _events(obj.get("event"))
        prop = None
        if obj.get("property") is not None:
            try:
                prop = parse_path(obj["property"])
            except ValueError as exc:
                raise DefinitionError("property", str(exc)) from None
        elif aggregation not in _NO_PROPERTY:
            raise DefinitionError("property", f"is required for {aggregation}")
        window = obj.get("window_days")
        if window is not None:
            window = rules.positive_int(window, "window_days")
        where = rules.filters(obj.get("where"), "where", prop if prop and prop.array else None)
        return ComputedTrait(
            name, aggregation, events, prop, window, where, _description(obj.get("description"))
        )
    except DefinitionError as exc:
        raise exc.about(subject) from None


def parse_audience(obj: Any) -> Audience:
    """Validate an audience dict; raises :class:`DefinitionError`."""
    subject = "audience"
    try:
        obj = check_keys(obj, "", ("name", "description", "conditions", "sql", "depends_on"))
        name = rules.name(obj.get("name"), "name")
        subject = f'audience "{name}"'
        description = _description(obj.get("description"))
        has_sql, has_conditions = obj.get("sql") is not None, obj.get("conditions") is not None
        if has_sql == has_conditions:
            raise DefinitionError("", "needs exactly one of conditions and sql")
        if has_conditions:
            if obj.get("depends_on") is not None:
                raise DefinitionError("depends_on", "is only for sql audiences")
            return Audience(name, description, conditions=parse_conditions(obj["conditions"], name))
        depends = obj.get("depends_on") or []
        if not isinstance(depends, list):
            raise DefinitionError("depends_on", "must be a list of audience names")
        deps = tuple(rules.name(d, join("depends_on", i)) for i, d in enumerate(depends))
        return Audience(name, description, sql=check_sql(obj["sql"], "sql"), depends_on=deps)
    except DefinitionError as exc:
        raise exc.about(subject) from None


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 2000:
        raise DefinitionError("description", "must be a string of at most 2000 characters")
    return value


def _events(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (rules.event_name(value, "event"),)
    if not isinstance(value, list) or not value:
        raise DefinitionError("event", "must be an event name or a non-empty list of them")
    return tuple(dict.fromkeys(rules.event_name(v, join("event", i)) for i, v in enumerate(value)))
