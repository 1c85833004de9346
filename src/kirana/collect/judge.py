"""One event's judgement, the same on every tracking endpoint.

``/v1/track`` and an event inside ``/v1/batch`` go through these two functions, so the
same bad event gets the same code wherever it is sent; only the path prefix of the
message differs (``$`` or ``$.batch[3]``). Every problem of the event's own bytes, from
JSON that does not parse to a value the lake could not hold, is an :class:`InvalidEvent`
(that event's rejection), never an exception that would fail the request around it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from kirana.collect.jsonscan import NotJSON, path_past_depth, split_batch
from kirana.collect.normalize import NO_DEFAULTS, BatchDefaults, InvalidEvent, normalize
from kirana.collect.schema import IncomingBatch, IncomingEvent, batch_decoder, event_decoder
from kirana.collect.values import (
    MAX_NESTING_DEPTH,
    explain_undecodable,
    find_violation,
    may_break_limits,
    too_deep,
)

#: msgspec's words for a number it cannot hold (Python's parser refuses over 4,300 digits)
_OUT_OF_RANGE = ("Integer value out of range", "Number out of range")


def _too_deep(raw: bytes, where: str) -> InvalidEvent:
    try:
        return too_deep(path_past_depth(raw, MAX_NESTING_DEPTH), where)
    except NotJSON:
        return too_deep((), where)


def decode_event(raw: bytes | msgspec.Raw, where: str = "$") -> IncomingEvent:
    """msgspec's decode, with each of its failures turned into a rejection naming the field."""
    try:
        return event_decoder.decode(raw)
    except RecursionError:
        raw = bytes(raw)
        raise _too_deep(raw, where) from None
    except msgspec.ValidationError as exc:
        text = str(exc).replace("`$", f"`{where}")
        code = "number_out_of_range" if text.startswith(_OUT_OF_RANGE) else "invalid_field"
        fallback = InvalidEvent(code, text)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        fallback = InvalidEvent("invalid_json", f"`{where}` is not valid JSON: {exc}")
    raw = bytes(raw)
    try:
        explained = explain_undecodable(raw, where)
    except RecursionError:  # pragma: no cover - msgspec refuses such depth first
        explained = _too_deep(raw, where)
    raise explained or fallback


def accept(
    event: IncomingEvent,
    raw: bytes | msgspec.Raw,
    *,
    received_at: datetime,
    source_id: str,
    defaults: BatchDefaults = NO_DEFAULTS,
    expected_type: str | None = None,
    where: str = "$",
) -> dict[str, Any]:
    """The canonical record of a decoded event, or InvalidEvent (Segment's rules, then the
    limits of :mod:`kirana.collect.values`, checked only when ``raw`` could break them)."""
    record = normalize(
        event,
        received_at=received_at,
        source_id=source_id,
        defaults=defaults,
        expected_type=expected_type,
    )
    if may_break_limits(raw):
        violation = find_violation(record, where)
        if violation is not None:
            raise violation
    return record


def decode_batch(data: bytes) -> tuple[IncomingBatch, list[bytes] | list[msgspec.Raw]]:
    """The batch envelope and its events' bytes, or InvalidEvent for the whole request.

    msgspec's fast decode keeps the events raw; when it refuses the body (a lone surrogate
    or too deep a nesting inside one event refuses all of it) the structural scan cuts the
    body apart instead, so each event can be judged, and rejected, on its own.
    """
    try:
        batch = batch_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEvent("invalid_field", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        batch, events = _decode_batch_slowly(data, exc)
    else:
        events = batch.batch
    if batch.context or batch.integrations:  # lent to every event: checked once here
        problem = find_violation({"context": batch.context, "integrations": batch.integrations})
        if problem is not None:
            raise problem
    return batch, events


def _decode_batch_slowly(data: bytes, first: Exception) -> tuple[IncomingBatch, list[bytes]]:
    try:
        envelope, events = split_batch(data)
    except NotJSON:
        raise InvalidEvent("invalid_json", f"request body is not valid JSON: {first}") from None
    try:
        batch = batch_decoder.decode(envelope)
    except msgspec.ValidationError as exc:
        raise InvalidEvent("invalid_field", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidEvent(
            "invalid_json", f"request body is not valid JSON outside `batch`: {exc}"
        ) from None
    return batch, events
