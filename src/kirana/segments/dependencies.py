"""What an audience depends on: refresh order, cycles, and the events that can move it.

Audiences may contain other audiences (``{"audience": "vip"}``), so a refresh
must compute ``vip`` first, and a cycle (``a`` in ``b`` in ``a``) has no
answer at all: it is refused with the cycle spelled out. Computed traits
depend only on events, so a refresh computes all of them before any audience.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from kirana.segments.definitions import (
    And,
    Audience,
    ComputedTrait,
    ComputedTraitIs,
    Condition,
    InAudience,
    Not,
    NotFollowedBy,
    Or,
    Performed,
)
from kirana.segments.rules import DefinitionError

__all__ = ["Dependencies", "check_references", "dependencies", "event_names", "refresh_order"]


@dataclass(frozen=True)
class Dependencies:
    computed_traits: frozenset[str]
    audiences: frozenset[str]


def _leaves(c: Condition | None) -> Iterator[Condition]:
    if c is None:
        return
    if isinstance(c, And | Or):
        for child in c.conditions:
            yield from _leaves(child)
    elif isinstance(c, Not):
        yield from _leaves(c.condition)
    else:
        yield c


def dependencies(audience: Audience) -> Dependencies:
    """Computed traits and audiences ``audience`` reads (a SQL audience: its ``depends_on``)."""
    leaves = list(_leaves(audience.conditions))
    traits = frozenset(c.name for c in leaves if isinstance(c, ComputedTraitIs))
    audiences = {c.audience for c in leaves if isinstance(c, InAudience)}
    return Dependencies(traits, frozenset(audiences | set(audience.depends_on)))


def refresh_order(audiences: Iterable[Audience]) -> list[str]:
    """Audience names, each after the audiences it contains (ties alphabetical).

    References to audiences not in ``audiences`` are ignored here (their
    membership is simply empty); :func:`check_references` refuses them.
    Raises :class:`DefinitionError` naming a cycle.
    """
    graph = {a.name: sorted(dependencies(a).audiences) for a in audiences}
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*trail[trail.index(name) :], name]
            raise DefinitionError("", f"audiences form a cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep in graph[name]:
            if dep in graph:
                visit(dep, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(graph):
        visit(name, [])
    return order


def check_references(
    audiences: Iterable[Audience], computed_traits: Iterable[str | ComputedTrait]
) -> None:
    """Refuse references to unknown audiences or computed traits, and cycles."""
    audiences = list(audiences)
    known_audiences = {a.name for a in audiences}
    known_traits = {t if isinstance(t, str) else t.name for t in computed_traits}
    for audience in audiences:
        deps = dependencies(audience)
        for name in sorted(deps.audiences - known_audiences):
            raise DefinitionError("", f'unknown audience "{name}"', f'audience "{audience.name}"')
        for name in sorted(deps.computed_traits - known_traits):
            rule = f'unknown computed trait "{name}"'
            raise DefinitionError("", rule, f'audience "{audience.name}"')
    refresh_order(audiences)


def event_names(
    audience: Audience,
    *,
    audiences: Mapping[str, Audience] | None = None,
    computed_traits: Mapping[str, ComputedTrait] | None = None,
) -> frozenset[str] | None:
    """Track event names whose arrival can change membership of ``audience``; None: any event.

    With ``audiences`` (by name), contained audiences count too; with
    ``computed_traits``, so do the events behind the traits it tests (a trait
    over every event makes the answer None). A SQL audience answers None.
    Trait conditions change with ``identify`` calls, which are not named here.
    """
    names: set[str] = set()
    seen: set[str] = set()
    todo = [audience]
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        if current.conditions is None:
            return None
        for leaf in _leaves(current.conditions):
            if isinstance(leaf, Performed):
                names.add(leaf.event)
            elif isinstance(leaf, NotFollowedBy):
                names.update((leaf.event, leaf.followed_by))
            elif isinstance(leaf, InAudience) and audiences and leaf.audience in audiences:
                todo.append(audiences[leaf.audience])
            elif isinstance(leaf, ComputedTraitIs) and computed_traits:
                trait = computed_traits.get(leaf.name)
                if trait is not None and trait.events is None:
                    return None
                if trait is not None:
                    names.update(trait.events or ())
    return frozenset(names)
