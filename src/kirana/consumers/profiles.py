"""Keeps the identity graph, profile traits and real-time audiences up to date.

The batch's effects and the new position commit in one transaction of the
profile store, and resolution is idempotent, so a crash replays cleanly.
"""

from __future__ import annotations

import time

import msgspec

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.identity.engine import IdentityResolver
from kirana.identity.store import SQLProfileStore
from kirana.profiles.realtime import RealtimeAudiences


class ProfileConsumer:
    name = "profiles"
    max_batch = 5_000
    linger = 0.2

    def __init__(
        self,
        event_log: EventLog,
        store: SQLProfileStore,
        resolver: IdentityResolver,
        realtime: RealtimeAudiences | None = None,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._realtime = realtime
        self._last_prune = 0.0
        stored = store.get_position(self.name)
        self._position = stored if stored is not None else event_log.start_offset
        self._decoder = msgspec.json.Decoder()

    def position(self) -> int:
        return self._position

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        with self._store.transaction():
            for record in records:
                if record.payload[:1] == EVENT:
                    event = self._decoder.decode(record.payload[1:])
                    profile_id = self._resolver.apply_event(event)
                    if self._realtime is not None:
                        self._realtime.on_event(event, profile_id)
            self._store.set_position(self.name, next_offset)
        self._position = next_offset

    def idle(self) -> None:
        if self._realtime is not None and time.monotonic() - self._last_prune > 60:
            self._last_prune = time.monotonic()
            with self._store.transaction():
                self._realtime.prune()

    def close(self) -> None:
        self._store.close()
