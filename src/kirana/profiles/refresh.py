"""Batch refresh of computed traits and audiences, incremental by default.

A refresh run:

1. decides which profiles may have changed since the last run: those with
   events loaded since then (by log offset), and those with events in the
   stretch of time that slid out of some definition's window (a 30-day count
   drops when an order turns 31 days old). Definitions that changed, a new
   UTC day with ``days_since_last`` traits, or ``full=True`` mean everyone;
2. builds the relations for just those profiles and runs each compiled
   computed trait, then each audience in dependency order;
3. writes the new values, diffs audience memberships, records history, and
   emits ``Audience Entered`` / ``Audience Exited`` events into the event log.

The watermark (log offset, time, definitions digest) is stored only after a
run succeeds, so a failed run leaves the previous outputs and is retried whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kirana.identity.store import SQLProfileStore
from kirana.profiles.audience_events import audience_events, identity_index
from kirana.profiles.relations import affected_profiles, replace_in_scope, segment_connection
from kirana.segments.compile import compile_audience, compile_computed_trait
from kirana.segments.definitions import parse_audience, parse_computed_trait
from kirana.segments.dependencies import refresh_order

log = logging.getLogger(__name__)

WATERMARK = "segments.refresh"
COMPUTED_TRAIT = "computed_trait"
AUDIENCE = "audience"


@dataclass
class RefreshReport:
    run_id: str
    full: bool
    profiles_considered: int
    traits: dict[str, int] = field(default_factory=dict)
    audiences: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def durations(node: Any) -> set[timedelta]:
    """Every window length mentioned anywhere in a definition."""
    found: set[timedelta] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("window_days", "within_days", "lookback_days") and isinstance(value, int):
                found.add(timedelta(days=value))
            elif key == "within_hours" and isinstance(value, int | float):
                found.add(timedelta(hours=value))
            else:
                found |= durations(value)
    elif isinstance(node, list):
        for item in node:
            found |= durations(item)
    return found


def _uses_days_since(definitions: list[dict[str, Any]]) -> bool:
    return any(d.get("aggregation") == "days_since_last" for d in definitions)


class SegmentRefresher:
    """Runs refreshes against one profile store and lake."""

    def __init__(
        self,
        store: SQLProfileStore,
        lake_dir: Path,
        emit: Callable[[list[dict[str, Any]]], None],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.lake_dir = lake_dir
        self.emit = emit
        self.clock = clock

    def _watermark(self) -> dict[str, Any] | None:
        raw = self.store.get_setting(WATERMARK)
        return json.loads(raw) if raw else None

    def refresh(
        self, *, full: bool = False, progress: Callable[[str], None] | None = None
    ) -> RefreshReport:
        started = self.clock()
        now = started
        run_id = f"run_{uuid.uuid4().hex[:12]}"
        trait_defs = [d.definition for d in self.store.definitions(COMPUTED_TRAIT)]
        audience_defs = [d.definition for d in self.store.definitions(AUDIENCE)]
        traits = [parse_computed_trait(d) for d in trait_defs]
        audiences = {a.name: a for a in (parse_audience(d) for d in audience_defs)}
        digest = hashlib.sha256(
            json.dumps([trait_defs, audience_defs], sort_keys=True).encode()
        ).hexdigest()

        mark = self._watermark()
        full = (
            full
            or mark is None
            or mark["digest"] != digest
            or (
                _uses_days_since(trait_defs)
                and datetime.fromisoformat(mark["at"]).date() != now.date()
            )
        )
        if full:
            only = None
            _, newest = affected_profiles(self.store, self.lake_dir, after_offset=-1, bands=[])
        else:
            last = datetime.fromisoformat(mark["at"])
            bands = [(last - d, now - d) for d in durations(trait_defs + audience_defs)]
            only, newest = affected_profiles(
                self.store, self.lake_dir, after_offset=mark["offset"], bands=bands
            )
        conn = segment_connection(self.store, self.lake_dir, only)
        [(considered,)] = conn.execute("SELECT count(*) FROM profiles").fetchall()
        report = RefreshReport(run_id, full, considered)

        with self.store.transaction():
            for trait in traits:
                if progress:
                    progress(f"computed trait {trait.name}")
                result = conn.sql(compile_computed_trait(trait, now)).to_arrow_table()
                rows = list(
                    zip(
                        result.column("profile_id").to_pylist(),
                        result.column("value").to_pylist(),
                        strict=True,
                    )
                )
                self.store.replace_computed_values(trait.name, rows, only)
                replace_in_scope(conn, "computed_traits", "name", trait.name, result)
                report.traits[trait.name] = len(rows)
            index = identity_index(self.store.export_identities())
            for name in refresh_order(list(audiences.values())):
                if progress:
                    progress(f"audience {name}")
                audience = audiences[name]
                members = conn.sql(compile_audience(audience, now)).to_arrow_table()
                now_in = set(members.column("profile_id").to_pylist())
                before = self.store.members(name)
                if only is not None:
                    scope = set(only)
                    before = before & scope
                entered, exited = sorted(now_in - before), sorted(before - now_in)
                transitions = self.store.transition_counts(name, entered + exited)
                events = audience_events(name, entered, exited, index, transitions, now)
                if events:  # before the commit: a retried run re-emits the same messageIds
                    self.emit(events)
                self.store.apply_membership(name, entered, exited, run_id)
                replace_in_scope(conn, "audience_members", "audience", name, members)
                report.audiences[name] = {
                    "entered": len(entered),
                    "exited": len(exited),
                    "size": len(self.store.members(name)),
                }
            self.store.forget_vanished_profiles()
            self.store.set_setting(
                WATERMARK, json.dumps({"offset": newest, "at": now.isoformat(), "digest": digest})
            )
        report.seconds = (self.clock() - started).total_seconds()
        return report
