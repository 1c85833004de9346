"""Keeps the identity graph and profile traits up to date from the event log.

The batch's effects and the new position commit in one transaction of the
profile store, and resolution is idempotent, so a crash replays cleanly.
"""

from __future__ import annotations

import msgspec

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.identity.engine import IdentityResolver
from kirana.identity.store import ProfileStore


class ProfileConsumer:
    name = "profiles"
    max_batch = 5_000
    linger = 0.2

    def __init__(
        self, event_log: EventLog, store: ProfileStore, resolver: IdentityResolver
    ) -> None:
        self._store = store
        self._resolver = resolver
        stored = store.get_position(self.name)
        self._position = stored if stored is not None else event_log.start_offset
        self._decoder = msgspec.json.Decoder()

    def position(self) -> int:
        return self._position

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        with self._store.transaction():
            for record in records:
                if record.payload[:1] == EVENT:
                    self._resolver.apply_event(self._decoder.decode(record.payload[1:]))
            self._store.set_position(self.name, next_offset)
        self._position = next_offset

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self._store.close()
