"""What Kirana puts in the event log: a one-byte kind, then JSON.

``E`` records are accepted events in Segment's canonical JSON; ``Q`` records
are rejected events with their reason (the quarantine). Both go through the
same durable append, so a rejection is as safe as an acceptance and is never
silently dropped.
"""

from __future__ import annotations

from typing import Any

import msgspec

EVENT = b"E"
QUARANTINE = b"Q"

_encoder = msgspec.json.Encoder()


def event_record(event: dict[str, Any]) -> bytes:
    return EVENT + _encoder.encode(event)


def quarantine_record(entry: dict[str, Any]) -> bytes:
    return QUARANTINE + _encoder.encode(entry)


def kind(payload: bytes) -> bytes:
    return payload[:1]


def body(payload: bytes) -> bytes:
    return payload[1:]
