"""Wire types of Segment's HTTP Tracking API, decoded with msgspec.

msgspec validates types in C while decoding, which keeps the ingest hot path
cheap, and its errors already name the JSON path (``$.userId``) and the rule
(``Expected `str`, got `array```). Unknown top-level keys are ignored, as
Segment does; ``context``, ``integrations``, ``properties`` and ``traits`` are
kept whole as free-form objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})

Id = str | int


class IncomingEvent(msgspec.Struct, omit_defaults=True):
    """One event as an SDK sends it (every field optional; rules live in normalize)."""

    type: str | None = None
    messageId: str | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    groupId: Id | None = None
    previousId: Id | None = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    originalTimestamp: datetime | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    channel: str | None = None
    version: Id | None = None
    writeKey: str | None = None


class IncomingBatch(msgspec.Struct):
    """``/v1/batch`` body: events stay raw so each one is judged on its own."""

    batch: list[msgspec.Raw]
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None


class WriteKeyOnly(msgspec.Struct):
    """Just enough of a body to find a write key sent in it."""

    writeKey: str | None = None


event_decoder = msgspec.json.Decoder(IncomingEvent)
batch_decoder = msgspec.json.Decoder(IncomingBatch)
write_key_decoder = msgspec.json.Decoder(WriteKeyOnly)
json_encoder = msgspec.json.Encoder()
