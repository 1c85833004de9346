"""Computed traits and audiences compiled to DuckDB SQL over the segment relations.

The SQL reads four relations (``profile_events``, ``profiles``,
``computed_traits``, ``audience_members``; schema in ``docs/segments.md``) and
never DuckDB's clock: ``now`` is baked in as a literal, so a definition's
result is a function of the data and ``now`` alone, which is what lets tests
and the real-time evaluator agree with it. Events after ``now`` are ignored.

An audience is one pass over ``profiles`` with a boolean per profile, so
``not`` is the complement over ``profiles`` and results never name a profile
that ``profiles`` lacks (an incremental refresh relies on that).
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
from kirana.segments.paths import json_path
from kirana.segments.sqlcheck import wrap
from kirana.segments.sqlevents import event_scope, filters_sql
from kirana.segments.sqltraits import compile_computed_trait
from kirana.segments.sqlvalues import literal, predicate, timestamp

__all__ = ["compile_audience", "compile_computed_trait"]


def compile_audience(audience: Audience, now: datetime) -> str:
    """SQL returning the distinct ``profile_id`` of every member of ``audience`` at ``now``."""
    timestamp(now)  # refuse a naive datetime early
    if audience.sql is not None:
        return (
            "SELECT DISTINCT p.profile_id FROM profiles p WHERE p.profile_id IN "
            f"(SELECT CAST(q.profile_id AS VARCHAR) FROM {wrap(audience.sql)} AS q)"
        )
    if audience.conditions is None:
        raise ValueError(f'audience "{audience.name}" has neither sql nor conditions')
    scope = _Scope(now)
    where = scope.condition(audience.conditions)
    columns = "".join(f", json_extract(traits, {literal(path)}) AS {c}" for path, c in scope.traits)
    joins = "".join(
        f" LEFT JOIN (SELECT profile_id, min(value) AS value FROM computed_traits"
        f" WHERE name = {literal(name)} GROUP BY profile_id) {c} ON {c}.profile_id = p.profile_id"
        for name, c in scope.computed
    )
    return (
        f"SELECT DISTINCT p.profile_id FROM (SELECT profile_id{columns} FROM profiles) p"
        f"{joins}\nWHERE {where}"
    )


class _Scope:
    """Builds the WHERE expression, collecting the trait columns and joins it needs."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.traits: list[tuple[str, str]] = []
        self.computed: list[tuple[str, str]] = []

    def _column(self, registry: list[tuple[str, str]], key: str, prefix: str) -> str:
        for existing, column in registry:
            if existing == key:
                return column
        column = f"{prefix}{len(registry)}"
        registry.append((key, column))
        return column

    def condition(self, c: Condition) -> str:
        if isinstance(c, And | Or):
            glue = " AND " if isinstance(c, And) else " OR "
            return "(" + glue.join(self.condition(x) for x in c.conditions) + ")"
        if isinstance(c, Not):
            return f"(NOT {self.condition(c.condition)})"
        if isinstance(c, TraitIs):
            column = self._column(self.traits, json_path(c.trait.head), "t")
            return predicate(f"p.{column}", c.op, c.value)
        if isinstance(c, ComputedTraitIs):
            alias = self._column(self.computed, c.name, "c")
            return predicate(f"CAST({alias}.value AS JSON)", c.op, c.value)
        if isinstance(c, InAudience):
            members = (
                f"SELECT profile_id FROM audience_members WHERE audience = {literal(c.audience)}"
            )
            return f"coalesce(p.profile_id IN ({members}), false)"
        if isinstance(c, Performed):
            return self._performed(c)
        if isinstance(c, NotFollowedBy):
            return self._not_followed_by(c)
        raise TypeError(f"not a condition: {c!r}")

    def _performed(self, c: Performed) -> str:
        conds = event_scope("e", (c.event,), self.now, c.within_days)
        conds += filters_sql(c.where, "e.properties")
        having = f"count(*) >= {c.at_least}"
        if c.at_most is not None:
            having += f" AND count(*) <= {c.at_most}"
        return (
            f"coalesce(p.profile_id IN (SELECT e.profile_id FROM profile_events e"
            f" WHERE {' AND '.join(conds)} GROUP BY e.profile_id HAVING {having}), false)"
        )

    def _not_followed_by(self, c: NotFollowedBy) -> str:
        window_us = c.window // timedelta(microseconds=1)
        conds = event_scope("x", (c.event,), self.now - c.window, None)
        if c.lookback_days is not None:
            start = self.now - timedelta(days=c.lookback_days)
            conds.append(f"x.timestamp > {timestamp(start)}")
        conds += filters_sql(c.where, "x.properties")
        followed = (
            "SELECT 1 FROM profile_events y WHERE y.profile_id = x.profile_id"
            f" AND y.type = 'track' AND y.event = {literal(c.followed_by)}"
            " AND y.timestamp > x.timestamp"
            f" AND y.timestamp <= x.timestamp + to_microseconds({window_us})"
        )
        return (
            f"coalesce(p.profile_id IN (SELECT x.profile_id FROM profile_events x"
            f" WHERE {' AND '.join(conds)} AND NOT EXISTS ({followed})), false)"
        )
