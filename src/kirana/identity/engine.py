"""Incremental identity resolution over a ProfileStore.

For each event: store its trait observations, store its links, and, only if
a link is new (or earlier than the stored one) or an identifier is new,
recompute the affected part of the graph with :func:`kirana.identity.graph.resolve`
and write the differences (moved identifiers, merge history). Because the
recomputation uses every stored link of the component, the outcome is the
same whatever order events arrive in, and replays change nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from typing import Any

from kirana.identity.graph import Link, event_links, resolve
from kirana.identity.rules import Identifier, IdentityRules, Observation, observe
from kirana.identity.store import MergeRecord, ProfileStore

log = logging.getLogger(__name__)

MAX_COMPONENT = 50_000


def profile_id_for(root: Identifier) -> str:
    """A profile's id is derived from its root identifier: stable and order independent."""
    digest = hashlib.blake2b(f"{root[0]}\x00{root[1]}".encode(), digest_size=10).hexdigest()
    return f"prof_{digest}"


class IdentityResolver:
    """Applies observations to the store, one event at a time, inside the caller's transaction."""

    def __init__(self, store: ProfileStore, rules: IdentityRules | None = None) -> None:
        self.store = store
        self.rules = rules or IdentityRules()
        self.recomputations = 0

    def apply_event(self, event: dict[str, Any]) -> str | None:
        """Resolve one canonical event; return the profile id it belongs to."""
        obs = observe(event, self.rules)
        return self.apply(obs)

    def apply(self, obs: Observation) -> str | None:
        if not obs.identifiers:
            return None
        head = obs.identifiers[0]
        if obs.traits:
            self.store.observe_traits(head, obs.traits, obs.timestamp, obs.message_id)
        known = self.store.profile_ids(obs.identifiers)
        changed = self.store.add_links(event_links(obs.identifiers, obs.timestamp, obs.message_id))
        if changed or len(known) < len(obs.identifiers):
            self._recompute(set(obs.identifiers), obs)
            known = self.store.profile_ids([head])
        return known[head]

    def _component(self, start: set[Identifier]) -> tuple[set[Identifier], list[Link]]:
        """Every identifier reachable from ``start`` over stored links (refused ones too)."""
        members = set(start)
        frontier = set(start)
        links: dict[tuple[Identifier, Identifier], Link] = {}
        while frontier and len(members) < MAX_COMPONENT:
            found = self.store.links_touching(frontier)
            frontier = set()
            for link in found:
                links[(link.a, link.b)] = link
                for ident in (link.a, link.b):
                    if ident not in members:
                        members.add(ident)
                        frontier.add(ident)
        if frontier:
            log.warning("identity component larger than %d identifiers; truncated", MAX_COMPONENT)
        return members, list(links.values())

    def _recompute(self, start: set[Identifier], obs: Observation) -> None:
        self.recomputations += 1
        members, links = self._component(start)
        resolution = resolve(members, links, self.rules)
        before = self.store.profile_ids(members)
        after = {ident: profile_id_for(root) for ident, root in resolution.groups.items()}
        moves = {i: p for i, p in after.items() if before.get(i) != p}
        if not moves:
            return
        self.store.assign(moves)
        # a profile that lost all its identifiers into another one was merged into it
        old_members: dict[str, set[Identifier]] = defaultdict(set)
        for ident, pid in before.items():
            old_members[pid].add(ident)
        merges = []
        for old_pid, idents in old_members.items():
            targets = {after[i] for i in idents}
            if old_pid not in after.values() and len(targets) == 1:
                (target,) = targets
                merges.append(MergeRecord(old_pid, target, obs.timestamp, obs.message_id))
        self.store.record_merges(merges)
