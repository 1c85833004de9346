"""Real-time audiences: membership re-evaluated for a profile as its events arrive.

Runs inside the profile consumer, right after identity resolution, in the same
transaction. Only audiences whose membership the event can change are
evaluated (by event name; ``identify`` calls re-check trait conditions), with
:func:`kirana.segments.realtime.evaluate` — proven to agree with the compiled
SQL the batch refresh uses. Events named by real-time audiences are kept in a
small recent-events table (pruned past the longest window), so evaluation
never waits for the lake.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kirana.identity.rules import IdentityRules, observe
from kirana.identity.store import SQLProfileStore
from kirana.profiles.audience_events import audience_events, identity_index
from kirana.segments.definitions import (
    Audience,
    ComputedTrait,
    parse_audience,
    parse_computed_trait,
)
from kirana.segments.dependencies import event_names
from kirana.segments.realtime import ProfileState, evaluate

REALTIME_RUN = "realtime"
_RULES = IdentityRules()


def _bounded(node: Any) -> bool:
    """Every event condition has a time window (so recent events are enough to decide)."""
    if isinstance(node, dict):
        if "event" in node and not ({"within_days", "lookback_days"} & node.keys()):
            return False
        return all(_bounded(v) for v in node.values())
    if isinstance(node, list):
        return all(_bounded(v) for v in node)
    return True


def _longest_window(definitions: list[dict[str, Any]]) -> timedelta:
    from kirana.profiles.refresh import durations

    found = durations(definitions)
    return max(found, default=timedelta(days=30))


class RealtimeAudiences:
    """Evaluates event-driven audiences per event; reloads definitions when they change."""

    def __init__(
        self,
        store: SQLProfileStore,
        emit: Callable[[list[dict[str, Any]]], None],
        *,
        reload_every: float = 2.0,
    ) -> None:
        self.store = store
        self.emit = emit
        self._reload_every = reload_every
        self._loaded_at = -1e9
        self._digest = ""
        self._audiences: dict[str, Audience] = {}
        self._triggers: dict[str, frozenset[str] | None] = {}
        self._names: set[str] = set()
        self._keep_all = False
        self.window = timedelta(days=30)
        self.changes = 0

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._loaded_at < self._reload_every:
            return
        self._loaded_at = now
        audience_defs = [d.definition for d in self.store.definitions("audience")]
        trait_defs = [d.definition for d in self.store.definitions("computed_trait")]
        digest = hashlib.sha256(
            json.dumps([audience_defs, trait_defs], sort_keys=True).encode()
        ).hexdigest()
        if digest == self._digest:
            return
        self._digest = digest
        audiences = {a.name: a for a in map(parse_audience, audience_defs)}
        traits: dict[str, ComputedTrait] = {
            t.name: t for t in map(parse_computed_trait, trait_defs)
        }
        raw = {d["name"]: d for d in audience_defs}
        # SQL audiences and all-time event conditions need the full history: batch only
        self._audiences = {
            n: a for n, a in audiences.items() if a.conditions is not None and _bounded(raw[n])
        }
        self._triggers = {
            n: event_names(a, audiences=audiences, computed_traits=traits)
            for n, a in self._audiences.items()
        }
        self._keep_all = any(t is None for t in self._triggers.values())
        self._names = {e for t in self._triggers.values() if t for e in t}
        self.window = _longest_window(audience_defs)

    def wants(self, event_type: str, name: str | None) -> bool:
        """Whether :meth:`on_event` could do anything for an event of this type and name.

        Lets the profile consumer skip decoding whole events no real-time audience
        looks at (most of them, on most days).
        """
        self._reload()
        if not self._audiences:
            return False
        return (
            event_type == "identify"
            or self._keep_all
            or (event_type == "track" and name in self._names)
        )

    def on_event(self, event: dict[str, Any], profile_id: str | None) -> None:
        self._reload()
        if not self._audiences or profile_id is None:
            return
        name = event.get("event") if event.get("type") == "track" else None
        timestamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        if name is not None and (self._keep_all or name in self._names):
            head = observe(event, _RULES).identifiers
            if head:
                self.store.add_recent_event(
                    head[0], name, timestamp, event["messageId"], event.get("properties") or {}
                )
        candidates = [
            a
            for n, a in self._audiences.items()
            if event.get("type") == "identify"
            or self._triggers[n] is None
            or (name is not None and name in self._triggers[n])
        ]
        if not candidates:
            return
        profile = self.store.profile_by_id(profile_id)
        if profile is None:
            return
        state = ProfileState(
            traits=profile.traits,
            computed_traits=self.store.computed_values(profile_id),
            audiences=set(self.store.audiences_of(profile_id)),
            events=self.store.recent_events(profile_id),
        )
        now = datetime.now(UTC)
        identities = None
        for audience in candidates:
            member = evaluate(audience, state, now)
            if member == (audience.name in state.audiences):
                continue
            entered, exited = ([profile_id], []) if member else ([], [profile_id])
            if identities is None:
                identities = identity_index(self.store.export_identities_of(profile_id))
            transitions = self.store.transition_counts(audience.name, [profile_id])
            self.emit(audience_events(audience.name, entered, exited, identities, transitions, now))
            self.store.apply_membership(audience.name, entered, exited, REALTIME_RUN)
            self.changes += 1

    def prune(self) -> None:
        if self._audiences:
            self.store.prune_recent_events(datetime.now(UTC) - self.window)
