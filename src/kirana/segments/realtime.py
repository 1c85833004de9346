"""Audience conditions evaluated for one profile in Python, for real-time decisions.

When an event arrives, the profile's membership can be re-decided at once
instead of waiting for the next batch refresh. The answer must be the one the
compiled SQL would give on the same data, so this module implements the same
rules (see :mod:`kirana.segments.sqlvalues` and ``docs/segments.md``), and the
tests compare the two on generated data.

A :class:`ProfileState` must hold the profile's *track* events, at least as
far back as the audience looks (all of them for an event condition without
``within_days`` or ``lookback_days``). Events after ``now`` are ignored, as in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from kirana.segments.definitions import (
    And,
    Audience,
    ComputedTraitIs,
    Condition,
    InAudience,
    Not,
    NotFollowedBy,
    Or,
    Performed,
    TraitIs,
)
from kirana.segments.paths import MISSING, lookup
from kirana.segments.rules import Filter, is_number

__all__ = ["Event", "ProfileState", "evaluate", "matches"]


class Event(NamedTuple):
    """A track event: a plain 4-tuple works too."""

    event: str
    timestamp: datetime
    message_id: str
    properties: Mapping[str, Any]


@dataclass
class ProfileState:
    """What real-time evaluation knows about one profile (JSON values already decoded)."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    computed_traits: Mapping[str, Any] = field(default_factory=dict)
    audiences: frozenset[str] | set[str] = frozenset()
    events: Sequence[tuple[str, datetime, str, Mapping[str, Any]]] = ()


def evaluate(audience: Audience, profile: ProfileState, now: datetime) -> bool:
    """Is ``profile`` a member of ``audience`` at ``now`` (same answer as the compiled SQL)?"""
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if audience.conditions is None:
        raise ValueError(f'audience "{audience.name}" is SQL; it is evaluated in batch only')
    events = [Event(*e) for e in profile.events if e[1] <= now]
    return _holds(audience.conditions, profile, events, now)


def _holds(c: Condition, profile: ProfileState, events: list[Event], now: datetime) -> bool:
    if isinstance(c, And):
        return all(_holds(x, profile, events, now) for x in c.conditions)
    if isinstance(c, Or):
        return any(_holds(x, profile, events, now) for x in c.conditions)
    if isinstance(c, Not):
        return not _holds(c.condition, profile, events, now)
    if isinstance(c, TraitIs):
        return matches(lookup(profile.traits, c.trait.head), c.op, c.value)
    if isinstance(c, ComputedTraitIs):
        value = profile.computed_traits.get(c.name, MISSING)
        return matches(MISSING if value is None else value, c.op, c.value)
    if isinstance(c, InAudience):
        return c.audience in profile.audiences
    if isinstance(c, Performed):
        start = None if c.within_days is None else now - timedelta(days=c.within_days)
        n = sum(1 for e in _scoped(events, c.event, start) if passes(e.properties, c.where))
        return c.at_least <= n and (c.at_most is None or n <= c.at_most)
    if isinstance(c, NotFollowedBy):
        return _not_followed_by(c, events, now)
    raise TypeError(f"not a condition: {c!r}")


def _scoped(events: Iterable[Event], name: str, start: datetime | None) -> Iterable[Event]:
    return (e for e in events if e.event == name and (start is None or e.timestamp > start))


def _not_followed_by(c: NotFollowedBy, events: list[Event], now: datetime) -> bool:
    window = c.window
    start = None if c.lookback_days is None else now - timedelta(days=c.lookback_days)
    follow_ups = [e.timestamp for e in events if e.event == c.followed_by]
    for x in _scoped(events, c.event, start):
        if x.timestamp + window > now or not passes(x.properties, c.where):
            continue
        if not any(x.timestamp < t <= x.timestamp + window for t in follow_ups):
            return True
    return False


def passes(properties: Any, where: Sequence[Filter]) -> bool:
    """Do the properties satisfy ``where``? ``[]`` filters need one element satisfying them all."""
    nested = [f for f in where if f.property.array]
    for f in where:
        if not f.property.array and not matches(lookup(properties, f.property.head), f.op, f.value):
            return False
    if not nested:
        return True
    array = lookup(properties, nested[0].property.head)
    return isinstance(array, list) and any(
        all(_element_matches(el, f) for f in nested) for el in array
    )


def _element_matches(element: Any, f: Filter) -> bool:
    value = lookup(element, f.property.tail) if f.property.tail else element
    return matches(MISSING if value is None else value, f.op, f.value)


def _double(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _equals(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if is_number(wanted):
        return is_number(value) and _double(value) == _double(wanted)
    return isinstance(value, str) and value == wanted


def matches(value: Any, op: str, wanted: Any) -> bool:
    """``op wanted`` on a decoded JSON value (:data:`MISSING` when absent or null)."""
    present = value is not MISSING and value is not None
    if op == "exists":
        return present == wanted
    if not present:
        return False
    if op == "eq":
        return _equals(value, wanted)
    if op == "neq":
        return not _equals(value, wanted)
    if op == "in":
        return any(_equals(value, w) for w in wanted)
    if op in ("gt", "gte", "lt", "lte"):
        if not is_number(value):
            return False
        a, b = _double(value), _double(wanted)
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if op == "contains":
        if isinstance(value, str) and isinstance(wanted, str):
            return wanted in value
        return isinstance(value, list) and any(x is not None and _equals(x, wanted) for x in value)
    raise ValueError(f"unknown op {op!r}")
