"""Lands rejected events (``Q`` records) in the operational store's quarantine.

Keyed by log offset, so a replayed batch inserts nothing twice.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import QUARANTINE
from kirana.store.protocol import OperationalStore, QuarantinedEvent


class QuarantineConsumer:
    name = "quarantine"
    max_batch = 10_000
    linger = 0.2

    def __init__(self, event_log: EventLog, store: OperationalStore) -> None:
        self._store = store
        stored = store.get_position(self.name)
        self._position = stored if stored is not None else event_log.start_offset

    def position(self) -> int:
        return self._position

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        entries = []
        for record in records:
            if record.payload[:1] != QUARANTINE:
                continue
            item = msgspec.json.decode(record.payload[1:])
            entries.append(
                QuarantinedEvent(
                    log_offset=record.offset,
                    source_id=item["sourceId"],
                    received_at=datetime.fromisoformat(item["receivedAt"]),
                    batch_index=item.get("index"),
                    message_id=item.get("messageId"),
                    code=item["code"],
                    reason=item["reason"],
                    raw=item["raw"],
                )
            )
        if entries:
            self._store.add_quarantined(entries)
        self._store.set_position(self.name, next_offset)
        self._position = next_offset

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass
