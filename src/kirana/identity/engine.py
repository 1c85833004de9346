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
from collections import OrderedDict, defaultdict
from typing import Any

from kirana.identity.graph import Link, event_links, resolve
from kirana.identity.rules import (
    Identifier,
    IdentityRules,
    Observation,
    identifiers,
    observe,
    parse_timestamp,
)
from kirana.identity.store import MergeRecord, ProfileStore

log = logging.getLogger(__name__)

MAX_COMPONENT = 50_000


def profile_id_for(root: Identifier) -> str:
    """A profile's id is derived from its root identifier: stable and order independent."""
    digest = hashlib.blake2b(f"{root[0]}\x00{root[1]}".encode(), digest_size=10).hexdigest()
    return f"prof_{digest}"


class _Lru(OrderedDict):
    """A bounded dict that forgets the least recently used entries."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.capacity:
            self.popitem(last=False)


class IdentityResolver:
    """Applies observations to the store, one event at a time, inside the caller's transaction.

    Most events repeat identifiers and links already in the graph. Two bounded
    caches of what this resolver knows is stored (it is the graph's only
    writer) let those events skip the store entirely except for their traits;
    any recomputation drops the affected entries, and :meth:`forget` drops all
    (after an erasure by another writer).
    """

    def __init__(
        self, store: ProfileStore, rules: IdentityRules | None = None, cache_size: int = 200_000
    ) -> None:
        self.store = store
        self.rules = rules or IdentityRules()
        self.recomputations = 0
        self._profiles = _Lru(cache_size)  # identifier -> profile id, as stored
        self._links = _Lru(cache_size)  # (a, b) -> (timestamp, message_id) as stored
        self._plain = _Lru(cache_size)  # (userId, anonymousId) -> identifiers (pure: rules)

    def forget(self) -> None:
        self._profiles.clear()
        self._links.clear()

    def _fast(self, obs: Observation) -> str | None:
        """The profile id when the event changes nothing in the graph, else None."""
        pid = self._profiles.get(obs.identifiers[0])
        if pid is None or any(i not in self._profiles for i in obs.identifiers[1:]):
            return None
        for link in event_links(obs.identifiers, obs.timestamp, obs.message_id):
            stored = self._links.get((link.a, link.b))
            if stored is None or (link.timestamp, link.message_id) < stored:
                return None
        return pid

    def apply_event(self, event: dict[str, Any]) -> str | None:
        """Resolve one canonical event; return the profile id it belongs to."""
        obs = observe(event, self.rules)
        return self.apply(obs)

    def apply_plain(
        self, user_id: str | None, anonymous_id: str | None, message_id: str, timestamp: str
    ) -> str | None:
        """:meth:`apply_event` for an event whose only identifiers are its userId and
        anonymousId and which carries no person traits (a track, page, screen or group
        call without ``context.traits`` or ``context.device``): the caller need not decode
        the whole event, and the identifiers of a repeated pair are remembered."""
        key = (user_id, anonymous_id)
        found = self._plain.get(key)
        if found is None:
            found, _ = identifiers({"userId": user_id, "anonymousId": anonymous_id}, self.rules)
            self._plain.remember(key, found)
        return self.apply(Observation(message_id, parse_timestamp(timestamp), found, {}))

    def apply(self, obs: Observation) -> str | None:
        if not obs.identifiers:
            return None
        head = obs.identifiers[0]
        if obs.traits:
            self.store.observe_traits(head, obs.traits, obs.timestamp, obs.message_id)
        fast = self._fast(obs)
        if fast is not None:
            return fast
        known = self.store.profile_ids(obs.identifiers)
        links = event_links(obs.identifiers, obs.timestamp, obs.message_id)
        changed = self.store.add_links(links)
        if changed or len(known) < len(obs.identifiers):
            self._recompute(set(obs.identifiers), obs)
            known = self.store.profile_ids(obs.identifiers)
        else:
            for link in links:
                if (link.a, link.b) not in self._links:
                    stored = self.store.links_touching([link.a])
                    for s in stored:
                        if (s.a, s.b) == (link.a, link.b):
                            self._links.remember((s.a, s.b), (s.timestamp, s.message_id))
        for ident, pid in known.items():
            self._profiles.remember(ident, pid)
        for link in changed:
            self._links.remember((link.a, link.b), (link.timestamp, link.message_id))
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
        for ident in members:
            self._profiles.pop(ident, None)
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
