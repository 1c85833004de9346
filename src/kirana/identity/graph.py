"""The canonical merge of one connected component of the identity graph.

The result must not depend on the order events arrive in, so it is defined
as a function of the *set* of links: links are replayed in a canonical order
(event time, then messageId) through a union-find that refuses any union
which would give one profile more identifiers of a type than its limit.
When a new link arrives out of order, the engine simply recomputes the
affected component with this function: same links, same answer.

A refused link is not lost: it stays in the graph and is reconsidered
whenever its component is recomputed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from kirana.identity.rules import Identifier, IdentityRules


@dataclass(frozen=True, order=True)
class Link:
    """Two identifiers seen together, first at ``timestamp`` in ``message_id``."""

    timestamp: datetime
    message_id: str
    a: Identifier
    b: Identifier


@dataclass(frozen=True)
class Resolution:
    """Which identifiers form which profile, and the links that were refused."""

    groups: dict[Identifier, Identifier]  # identifier -> its profile's root identifier
    refused: tuple[Link, ...]


def _first_seen(links: list[Link], identifiers: set[Identifier]) -> dict[Identifier, tuple]:
    seen: dict[Identifier, tuple] = {}
    for link in links:
        key = (link.timestamp, link.message_id)
        for ident in (link.a, link.b):
            if ident not in seen or key < seen[ident]:
                seen[ident] = key
    far = (datetime.max.replace(tzinfo=None), "")
    for ident in identifiers:
        seen.setdefault(ident, far)
    return seen


def resolve(identifiers: set[Identifier], links: list[Link], rules: IdentityRules) -> Resolution:
    """Group ``identifiers`` into profiles using ``links`` under ``rules``."""
    parent: dict[Identifier, Identifier] = {i: i for i in identifiers}
    counts: dict[Identifier, Counter[str]] = {i: Counter({i[0]: 1}) for i in identifiers}
    seen = _first_seen(links, identifiers)

    def find(x: Identifier) -> Identifier:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def older(x: Identifier, y: Identifier) -> bool:
        """The root that survives a merge: first seen, then strongest type, then value."""
        return (seen[x], rules.rank(x[0]), x) < (seen[y], rules.rank(y[0]), y)

    refused: list[Link] = []
    for link in sorted(links):
        ra, rb = find(link.a), find(link.b)
        if ra == rb:
            continue
        merged = counts[ra] + counts[rb]
        if any((limit := rules.limit(t)) is not None and n > limit for t, n in merged.items()):
            refused.append(link)
            continue
        keep, drop = (ra, rb) if older(ra, rb) else (rb, ra)
        parent[drop] = keep
        counts[keep] = merged
        del counts[drop]
    return Resolution({i: find(i) for i in identifiers}, tuple(refused))


def event_links(
    identifiers: tuple[Identifier, ...], timestamp: datetime, message_id: str
) -> list[Link]:
    """Links one event makes: its strongest identifier to each of the others.

    A star from the strongest identifier (not every pair) means that when a
    limit is hit, it is the weaker identifiers whose links are refused.
    """
    if len(identifiers) < 2:
        return []
    head = identifiers[0]
    return [Link(timestamp, message_id, *sorted((head, other))) for other in identifiers[1:]]
