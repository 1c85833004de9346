"""Segment-compatible forwarding: records become events POSTed to ``<url>/v1/batch``.

Works against Segment, RudderStack or another Kirana. Events pass through
unchanged (their messageId is the receiver's dedupe key); entity changes
become ``identify`` calls — the row's fields as traits, and ``null`` for the
fields of a deleted row — with the record id as messageId.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from kirana.destinations.config import SegmentForwardSettings
from kirana.destinations.errors import RetryableError, classify_http
from kirana.destinations.records import OutboundRecord

# the receiver sets its own receipt fields; the timestamp is already clock-corrected,
# so sending sentAt along would make the receiver correct it a second time
_DROP = ("receivedAt", "sourceId", "sentAt", "originalTimestamp")


def as_segment_event(record: OutboundRecord, now: str) -> dict[str, Any]:
    if record.action == "event" or "type" in record.data:
        event = {k: v for k, v in record.data.items() if k not in _DROP}
        event.setdefault("messageId", record.record_id)
        return event
    return {
        "type": "identify",
        "userId": record.key,
        "traits": record.data,
        "messageId": record.record_id,
        "timestamp": now,
    }


class SegmentForwardDestination:
    def __init__(self, settings: SegmentForwardSettings) -> None:
        self._url = settings.url.rstrip("/") + "/v1/batch"
        self._client = httpx.Client(timeout=settings.timeout_seconds, auth=(settings.write_key, ""))

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        batch = [as_segment_event(r, now) for r in records]
        try:
            response = self._client.post(self._url, json={"batch": batch})
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}", outage=True) from exc
        error = classify_http(
            response.status_code, response.text, response.headers.get("Retry-After")
        )
        if error is not None:
            raise error

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self._client.close()
