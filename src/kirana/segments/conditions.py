"""Audience condition trees: their types and their parser.

A condition is an object with exactly one distinguishing key (``and``, ``or``,
``not``, ``trait``, ``computed_trait``, ``event``, ``audience``); anything
else, including a misspelt key, is refused with its path, because a silently
ignored ``within_day`` would change who is in the audience.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from kirana.segments import rules
from kirana.segments.paths import PropertyPath, parse_path
from kirana.segments.rules import DefinitionError, Filter, check_keys, join

MAX_DEPTH = 20


class And(msgspec.Struct, frozen=True):
    conditions: tuple[Condition, ...]


class Or(msgspec.Struct, frozen=True):
    conditions: tuple[Condition, ...]


class Not(msgspec.Struct, frozen=True):
    condition: Condition


class TraitIs(msgspec.Struct, frozen=True):
    """``{"trait": path, "op", "value"}`` on ``profiles.traits``."""

    trait: PropertyPath
    op: str
    value: Any


class ComputedTraitIs(msgspec.Struct, frozen=True):
    """``{"computed_trait": name, "op", "value"}`` on ``computed_traits``."""

    name: str
    op: str
    value: Any


class Performed(msgspec.Struct, frozen=True):
    """Did ``event`` between ``at_least`` and ``at_most`` times (in the last ``within_days``)."""

    event: str
    at_least: int = 1
    at_most: int | None = None
    within_days: int | None = None
    where: tuple[Filter, ...] = ()


class NotFollowedBy(msgspec.Struct, frozen=True):
    """Did ``event`` (in the last ``lookback_days``) with no ``followed_by`` within the window."""

    event: str
    followed_by: str
    within_hours: int | float
    lookback_days: int | None = None
    where: tuple[Filter, ...] = ()

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.within_hours)


class InAudience(msgspec.Struct, frozen=True):
    audience: str


Condition = And | Or | Not | TraitIs | ComputedTraitIs | Performed | NotFollowedBy | InAudience


_KINDS = ("and", "or", "not", "trait", "computed_trait", "event", "audience")


def parse_conditions(obj: Any, owner: str, path: str = "conditions", depth: int = 0) -> Condition:
    """Parse a condition tree of audience ``owner``; raises :class:`DefinitionError`."""
    if depth >= MAX_DEPTH:
        raise DefinitionError(path, f"conditions may be nested at most {MAX_DEPTH} deep")
    kinds = [k for k in _KINDS if isinstance(obj, dict) and k in obj]
    if len(kinds) != 1:
        raise DefinitionError(path, f"must be an object with exactly one of {', '.join(_KINDS)}")
    kind = kinds[0]
    if kind in ("and", "or"):
        check_keys(obj, path, (kind,))
        items, ipath = obj[kind], join(path, kind)
        if not isinstance(items, list) or not items:
            raise DefinitionError(ipath, "must be a non-empty list of conditions")
        children = tuple(
            parse_conditions(c, owner, join(ipath, i), depth + 1) for i, c in enumerate(items)
        )
        return And(children) if kind == "and" else Or(children)
    if kind == "not":
        check_keys(obj, path, ("not",))
        return Not(parse_conditions(obj["not"], owner, join(path, "not"), depth + 1))
    if kind == "audience":
        check_keys(obj, path, ("audience",))
        other = rules.name(obj["audience"], join(path, "audience"))
        if other == owner:
            raise DefinitionError(join(path, "audience"), "an audience cannot contain itself")
        return InAudience(other)
    if kind == "event":
        return _event_condition(obj, path)
    check_keys(obj, path, (kind, "op", "value"))
    op, value = rules.op_value(obj, path)
    if kind == "computed_trait":
        return ComputedTraitIs(rules.name(obj[kind], join(path, kind)), op, value)
    try:
        trait = parse_path(obj[kind])
    except ValueError as exc:
        raise DefinitionError(join(path, kind), str(exc)) from None
    if trait.array:
        raise DefinitionError(join(path, kind), "a trait path cannot unnest an array ([])")
    return TraitIs(trait, op, value)


def _event_condition(obj: dict[str, Any], path: str) -> Performed | NotFollowedBy:
    event = rules.event_name(obj["event"], join(path, "event"))
    if "not_followed_by" in obj:
        check_keys(
            obj, path, ("event", "not_followed_by", "within_hours", "lookback_days", "where")
        )
        then = rules.event_name(obj["not_followed_by"], join(path, "not_followed_by"))
        hours = obj.get("within_hours")
        hpath = join(path, "within_hours")
        if not rules.is_number(hours) or not 0 < hours <= 24 * rules.MAX_DAYS:
            raise DefinitionError(hpath, "must be a number of hours > 0 (required)")
        lookback = obj.get("lookback_days")
        if lookback is not None:
            lookback = rules.positive_int(lookback, join(path, "lookback_days"))
            if lookback * 24 <= hours:
                rule = "must be longer than within_hours, or no event could qualify"
                raise DefinitionError(join(path, "lookback_days"), rule)
        where = rules.filters(obj.get("where"), join(path, "where"))
        return NotFollowedBy(event, then, hours, lookback, where)
    check_keys(obj, path, ("event", "at_least", "at_most", "within_days", "where"))
    at_least = rules.positive_int(obj.get("at_least", 1), join(path, "at_least"), rules.MAX_COUNT)
    at_most = obj.get("at_most")
    if at_most is not None:
        mpath = join(path, "at_most")
        if not rules.is_int(at_most) or not at_least <= at_most <= rules.MAX_COUNT:
            raise DefinitionError(mpath, f"must be an integer >= at_least ({at_least})")
    within = obj.get("within_days")
    if within is not None:
        within = rules.positive_int(within, join(path, "within_days"))
    where = rules.filters(obj.get("where"), join(path, "where"))
    return Performed(event, at_least, at_most, within, where)
