"""Turn one decoded event into the canonical record the event log stores.

Pure functions: the caller passes the receive time, so tests control the
clock. The canonical form is Segment's own JSON (camelCase keys) plus
``receivedAt``, ``originalTimestamp`` and ``sourceId``, so every consumer, and
every Segment-compatible destination, can read it unchanged.

Timestamp correction is Segment's: a device clock may be wrong, but the
*difference* between when an event happened and when the batch was sent is
trustworthy, so ``timestamp = receivedAt - (sentAt - timestamp)``.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kirana.collect.schema import EVENT_TYPES, IncomingEvent

MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 255
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)


class InvalidEvent(ValueError):
    """An event broke a rule; ``code`` is stable for machines, ``str`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BatchDefaults:
    """What a batch envelope lends to each of its events."""

    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


NO_DEFAULTS = BatchDefaults()


def _utc(value: datetime, field: str) -> datetime:
    """Naive timestamps are taken as UTC (what most SDKs mean by them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:00-05:00
        raise InvalidEvent(
            "invalid_timestamp", f"`{field}` {value.isoformat()} is outside years 1-9999 in UTC"
        ) from None


def _identifier(value: str | int | None, field: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not text.strip():
        raise InvalidEvent("invalid_field", f"`{field}` must not be empty")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(
            "invalid_field", f"`{field}` is {len(text)} characters; at most {MAX_ID_LENGTH} allowed"
        )
    return text


def _merge(envelope: dict[str, Any] | None, own: dict[str, Any] | None) -> dict[str, Any] | None:
    """Batch-level objects are defaults; the event's own keys win."""
    if not envelope:
        return own
    if not own:
        return dict(envelope)
    return {**envelope, **own}


@functools.lru_cache(maxsize=4096)
def _iso(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; cached, because ``receivedAt`` and ``sentAt`` are the
    same for every event of a batch and formatting was a fifth of normalisation's time."""
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _corrected(original: datetime, sent_at: datetime, received_at: datetime) -> datetime:
    """Segment's correction; a result outside years 1-9999 is as wrong as any before 2000."""
    try:
        return received_at - (sent_at - original)
    except OverflowError:
        raise InvalidEvent(
            "invalid_timestamp",
            f"`timestamp` {_iso(original)} corrected by `sentAt` {_iso(sent_at)} "
            "falls outside years 1-9999",
        ) from None


def normalize(
    event: IncomingEvent,
    *,
    received_at: datetime,
    source_id: str,
    defaults: BatchDefaults = NO_DEFAULTS,
    expected_type: str | None = None,
) -> dict[str, Any]:
    """Validate ``event`` and return its canonical JSON-ready dict, or raise InvalidEvent."""
    etype = event.type if event.type is not None else expected_type
    if etype is None:
        raise InvalidEvent("missing_field", "`type` is required in a batch event")
    if expected_type is not None and event.type is not None and event.type != expected_type:
        raise InvalidEvent(
            "invalid_field", f"`type` is `{event.type}` but this endpoint takes `{expected_type}`"
        )
    if etype not in EVENT_TYPES:
        allowed = ", ".join(sorted(EVENT_TYPES))
        raise InvalidEvent("invalid_field", f"`type` `{etype}` is not one of: {allowed}")

    user_id = _identifier(event.userId, "userId")
    anonymous_id = _identifier(event.anonymousId, "anonymousId")
    record: dict[str, Any] = {"type": etype}

    if etype == "alias":
        previous_id = _identifier(event.previousId, "previousId")
        if user_id is None or previous_id is None:
            raise InvalidEvent("missing_field", "alias needs both `userId` and `previousId`")
        record["previousId"] = previous_id
    elif user_id is None and anonymous_id is None:
        raise InvalidEvent("missing_field", "`userId` or `anonymousId` is required")

    if etype == "track":
        name = event.event
        if name is None or not name.strip():
            raise InvalidEvent("missing_field", "track needs a non-empty `event` name")
        if len(name) > MAX_EVENT_NAME_LENGTH:
            raise InvalidEvent(
                "invalid_field", f"`event` is longer than {MAX_EVENT_NAME_LENGTH} characters"
            )
        record["event"] = name
    elif etype == "group":
        group_id = _identifier(event.groupId, "groupId")
        if group_id is None:
            raise InvalidEvent("missing_field", "group needs a `groupId`")
        record["groupId"] = group_id

    message_id = event.messageId
    if message_id is not None:
        if not message_id.strip() or len(message_id) > MAX_ID_LENGTH:
            raise InvalidEvent(
                "invalid_field", f"`messageId` must be 1..{MAX_ID_LENGTH} non-blank characters"
            )
    else:
        message_id = str(uuid.uuid4())

    sent_at = event.sentAt or defaults.sent_at
    if sent_at is not None:
        sent_at = _utc(sent_at, "sentAt")
    if event.timestamp is None:
        timestamp = received_at
        original = None
    else:
        original = _utc(event.timestamp, "timestamp")
        timestamp = original
        if sent_at is not None:
            timestamp = _corrected(original, sent_at, received_at)
    if timestamp < EARLIEST_TIMESTAMP:
        raise InvalidEvent(
            "invalid_timestamp",
            f"`timestamp` resolves to {_iso(timestamp)}, before {EARLIEST_TIMESTAMP.date()}",
        )
    if timestamp > received_at + MAX_CLOCK_AHEAD:
        raise InvalidEvent(
            "invalid_timestamp",
            f"`timestamp` resolves to {_iso(timestamp)}, more than a day after it was received",
        )

    record["messageId"] = message_id
    if user_id is not None:
        record["userId"] = user_id
    if anonymous_id is not None:
        record["anonymousId"] = anonymous_id
    for key in ("name", "category", "channel"):
        value = getattr(event, key)
        if value is not None:
            record[key] = value
    if event.version is not None:
        record["version"] = event.version
    if event.properties is not None:
        record["properties"] = event.properties
    if event.traits is not None:
        record["traits"] = event.traits
    context = _merge(defaults.context, event.context)
    if context is not None:
        record["context"] = context
    integrations = _merge(defaults.integrations, event.integrations)
    if integrations is not None:
        record["integrations"] = integrations
    record["timestamp"] = _iso(timestamp)
    if original is not None:
        record["originalTimestamp"] = _iso(original)
    if sent_at is not None:
        record["sentAt"] = _iso(sent_at)
    record["receivedAt"] = _iso(received_at)
    record["sourceId"] = source_id
    return record
