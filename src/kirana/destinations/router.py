"""The consumer that routes the event log into destination queues.

Each batch of events is matched against every destination's routes and the
resulting records are queued in the same SQLite transaction that moves the
router's log position, so an acknowledged event reaches every queue exactly
once even across crashes (the queue's unique record id catches the rest).

A destination receives the events *received* after it was created. That is
decided by each event's ``receivedAt``, not by where the router happens to be
in the log, so a worker that starts late (or replays) neither skips events a
destination should get nor floods a new destination with old ones.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from kirana.destinations.config import DestinationConfig
from kirana.destinations.records import OutboundRecord
from kirana.destinations.routing import route_event
from kirana.destinations.store import DeliveryStore
from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT

CONSUMER_NAME = "destinations"


class DestinationRouter:
    name = CONSUMER_NAME
    max_batch = 5_000
    linger = 0.1

    def __init__(self, event_log: EventLog, store: DeliveryStore) -> None:
        self._store = store
        stored = store.get_position(self.name)
        self._position = stored if stored is not None else event_log.start_offset
        self._decoder = msgspec.json.Decoder()
        self._version: tuple[int, float] | None = None
        self._routed: list[tuple[DestinationConfig, float]] = []

    def position(self) -> int:
        return self._position

    def _configs(self) -> list[tuple[DestinationConfig, float]]:
        version = self._store.config_version()
        if version != self._version:
            self._routed = [(c, t) for c, t in self._store.destinations_since() if c.routes]
            self._version = version
        return self._routed

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        configs = self._configs()
        items: list[tuple[str, OutboundRecord]] = []
        if configs:
            for record in records:
                if record.payload[:1] != EVENT:
                    continue
                event = self._decoder.decode(record.payload[1:])
                received = _received_at(event)
                for config, created_at in configs:
                    if received < created_at:
                        continue
                    routed = route_event(config.routes, event)
                    if routed is not None:
                        items.append((config.name, routed))
        with self._store.transaction():
            self._store.enqueue(items, "events")
            self._store.set_position(self.name, next_offset)
        self._position = next_offset

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass


def _received_at(event: dict) -> float:
    """When Kirana received the event (unix seconds; 0 when unknown, so it is not routed)."""
    try:
        return datetime.fromisoformat(event["receivedAt"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0
