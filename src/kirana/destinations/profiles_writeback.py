"""The built-in ``profiles`` destination: fields written back onto profiles as traits.

This is the post's "reverse ETL back to the CDP". Each record becomes an
``identify`` event appended to Kirana's own event log, so the ordinary
identity and profile path applies it (and the lake keeps a copy); the record
id is the messageId, so a replay is deduplicated downstream. A deleted row sets
its fields to null.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kirana.destinations.config import ProfilesSettings
from kirana.destinations.errors import PermanentError, RetryableError
from kirana.destinations.records import OutboundRecord

KIRANA_SOURCE = "kirana"


def identify_event(record: OutboundRecord, identifier: str, now: datetime) -> dict[str, Any]:
    if not record.key:
        raise PermanentError("the record has an empty key; it cannot name a profile")
    stamp = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    event: dict[str, Any] = {
        "type": "identify",
        "messageId": record.record_id,
        "traits": dict(record.data),
        "timestamp": stamp,
        "originalTimestamp": stamp,
        "receivedAt": stamp,
        "sourceId": KIRANA_SOURCE,
        "context": {"library": {"name": "kirana-reverse-etl"}},
    }
    event["userId" if identifier == "user_id" else "anonymousId"] = record.key
    return event


class ProfilesDestination:
    def __init__(
        self, settings: ProfilesSettings, emit: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        self._identifier = settings.identifier
        self._emit = emit

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        now = datetime.now(UTC)
        events = []
        for index, record in enumerate(records):
            if record.action == "event":
                self._append(events)
                raise PermanentError(
                    "the profiles destination takes sync rows and audience changes, not events",
                    index=index,
                )
            try:
                events.append(identify_event(record, self._identifier, now))
            except PermanentError as exc:
                self._append(events)  # the records before the bad one are delivered
                exc.index = index
                raise
        self._append(events)

    def _append(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        try:
            self._emit(events)
        except OSError as exc:
            raise RetryableError(f"cannot append to the event log: {exc}", outage=True) from exc

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass
