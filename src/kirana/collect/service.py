"""The collector: from request bytes to durably logged events, with no HTTP in sight.

Rules it enforces (Segment's, so SDK behaviour matches):

* a single event is at most 32 KB, a batch body at most 500 KB (before and after
  gzip, enforced as the body streams in: ``collect.body``);
* the write key comes from basic auth, ``X-Write-Key`` or the body's ``writeKey``; a
  header key is checked before any of the body is read;
* each event is judged alone (``collect.judge``, the same on every endpoint): good ones
  are logged, bad ones, whatever is wrong with their bytes, are logged to the quarantine
  with their reason, and the caller is told which;
* nothing is acknowledged before the event log has it on disk;
* when the log's write queue is too deep the caller gets 429 and retries,
  rather than the server buffering without bound.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from kirana.collect.body import read_body
from kirana.collect.errors import CollectError
from kirana.collect.judge import accept, decode_batch, decode_event
from kirana.collect.normalize import BatchDefaults, InvalidEvent
from kirana.collect.schema import IncomingEvent, write_key_decoder
from kirana.eventlog.protocol import EventLog
from kirana.eventlog.records import event_record, quarantine_record
from kirana.store.protocol import Source

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
BATCH_ENDPOINTS = frozenset({"batch", "import"})


@dataclass(slots=True)
class Rejection:
    index: int | None
    message_id: str | None
    code: str
    reason: str


@dataclass(slots=True)
class IngestResult:
    accepted: int
    source: Source
    rejected: list[Rejection] = field(default_factory=list)
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class Credentials:
    """Write-key candidates from the request headers."""

    authorization: str | None = None
    x_write_key: str | None = None

    def header_key(self) -> str | None:
        if self.x_write_key:
            return self.x_write_key
        auth = self.authorization
        if auth and auth[:6].lower() == "basic ":
            try:
                user = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise CollectError(
                    401, "invalid_auth", "Basic auth header is not valid base64"
                ) from exc
            return user.split(":", 1)[0] or None
        return None


class Collector:
    """Validates requests and appends them to the event log."""

    def __init__(
        self,
        log: EventLog,
        lookup_source: Callable[[str], Source | None],
        *,
        max_pending_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        suppressed: Callable[[Mapping[str, Any] | bytes], bool] = lambda event: False,
        judging: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        # ``suppressed`` judges an event, or the raw bytes of one that failed validation
        # (erased people: privacy.suppression); ``judging`` spans a request's checks and
        # its append, so an erasure can wait for those judged before it (privacy.gate)
        self._suppressed = suppressed
        self._judging = judging
        self._log = log
        self._lookup_source = lookup_source
        self._max_pending = max_pending_bytes
        self._clock = clock

    def _authenticate(
        self, header_source: Source | None, body_key: Callable[[], str | None]
    ) -> Source:
        """The source the request's write key belongs to (headers win over the body)."""
        if header_source is not None:
            return header_source
        key = body_key()
        if not key:
            raise CollectError(
                401,
                "missing_write_key",
                "no write key: send it as the basic-auth user name, "
                "an X-Write-Key header or `writeKey` in the body",
            )
        return self._source_for(key)

    def _source_for(self, key: str) -> Source:
        """The enabled source ``key`` belongs to: 401 for an unknown, expired or deleted
        key, 403 for a disabled source (nothing of the request is stored)."""
        source = self._lookup_source(key)
        if source is None:
            raise CollectError(
                401,
                "unknown_write_key",
                "unknown write key; create a source with `kirana sources create NAME`",
            )
        if not source.enabled:
            raise CollectError(
                403,
                "source_disabled",
                f"source {source.name!r} is disabled; enable it with "
                f"`kirana sources enable {source.name}`",
            )
        return source

    def _shed_load(self) -> None:
        if self._log.pending_bytes > self._max_pending:
            raise CollectError(
                429, "overloaded", "the event log is saturated; retry shortly", retry_after=1
            )

    async def ingest(
        self,
        endpoint: str,
        body: bytes | AsyncIterable[bytes],
        *,
        credentials: Credentials,
        content_encoding: str | None = None,
        content_length: int | None = None,
    ) -> IngestResult:
        """Handle one tracking-API request; raise CollectError for request-level failures.

        ``body`` may be the request's chunks as they arrive: header credentials are checked
        before any of it is read and the size limit while it streams in (``collect.body``),
        so an unauthenticated or oversized request costs no more memory than the limit.
        """
        is_batch = endpoint in BATCH_ENDPOINTS
        limit = MAX_BATCH_BYTES if is_batch else MAX_EVENT_BYTES
        header_source = self._header_source(credentials)
        data = await read_body(body, content_encoding, limit, declared_length=content_length)
        self._shed_load()
        received_at = self._clock()
        with self._judging():
            if is_batch:
                return await self._ingest_batch(data, header_source, received_at)
            return await self._ingest_one(endpoint, data, header_source, received_at)

    def _header_source(self, credentials: Credentials) -> Source | None:
        key = credentials.header_key()
        if key is None:
            return None
        return self._source_for(key)

    async def _ingest_one(
        self, endpoint: str, data: bytes, header_source: Source | None, received_at: datetime
    ) -> IngestResult:
        event: IncomingEvent | None = None
        try:
            event = decode_event(data)
            source = self._authenticate(header_source, lambda: event.writeKey)
            record = accept(
                event, data, received_at=received_at, source_id=source.id, expected_type=endpoint
            )
        except InvalidEvent as exc:  # quarantined like a rejected event of a batch
            if event is None:
                source = self._authenticate(header_source, lambda: _body_write_key(data))
            message_id = event.messageId if event is not None else _raw_message_id(data)
            if not self._suppressed(data):  # an erased person's bad events are not kept
                await self._log.append(
                    [
                        _quarantine(
                            source, received_at, None, message_id, exc.code, exc.message, data
                        )
                    ]
                )
            raise CollectError(400, exc.code, exc.message) from exc
        if self._suppressed(record):
            return IngestResult(accepted=0, source=source, suppressed=1)
        await self._log.append([event_record(record)])
        return IngestResult(accepted=1, source=source)

    async def _ingest_batch(
        self, data: bytes, header_source: Source | None, received_at: datetime
    ) -> IngestResult:
        try:
            batch, events = decode_batch(data)
        except InvalidEvent as exc:  # the request itself, not one event, is broken
            self._authenticate(header_source, lambda: _body_write_key(data))
            raise CollectError(400, exc.code, exc.message) from None
        source = self._authenticate(header_source, lambda: batch.writeKey)
        defaults = BatchDefaults(batch.sentAt, batch.context, batch.integrations)
        payloads: list[bytes] = []
        result = IngestResult(accepted=0, source=source)
        for index, raw in enumerate(events):
            message_id = None
            try:
                if len(raw) > MAX_EVENT_BYTES:
                    raise InvalidEvent(
                        "event_too_large",
                        f"event is {len(raw)} bytes; at most {MAX_EVENT_BYTES} allowed",
                    )
                where = f"$.batch[{index}]"
                event = decode_event(raw, where)
                message_id = event.messageId
                record = accept(
                    event,
                    raw,
                    received_at=received_at,
                    source_id=source.id,
                    defaults=defaults,
                    where=where,
                )
                if self._suppressed(record):
                    result.suppressed += 1  # an erased person: policy, reported, not stored
                    continue
                payloads.append(event_record(record))
                result.accepted += 1
            except InvalidEvent as exc:
                message_id = message_id or _raw_message_id(raw)
                result.rejected.append(Rejection(index, message_id, exc.code, exc.message))
                if self._suppressed(bytes(raw)):
                    continue  # reported as rejected, but an erased person's: not quarantined
                payloads.append(
                    _quarantine(
                        source, received_at, index, message_id, exc.code, exc.message, bytes(raw)
                    )
                )
        if payloads:
            await self._log.append(payloads)
        return result


def _body_write_key(data: bytes) -> str | None:
    try:
        return write_key_decoder.decode(data).writeKey
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def _raw_message_id(raw: bytes | msgspec.Raw) -> str | None:
    """Best effort: the messageId of an event that failed validation, for the caller's report."""
    try:
        value: Any = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    message_id = value.get("messageId") if isinstance(value, dict) else None
    return message_id if isinstance(message_id, str) else None


def _quarantine(
    source: Source,
    received_at: datetime,
    index: int | None,
    message_id: str | None,
    code: str,
    reason: str,
    raw: bytes | msgspec.Raw,
) -> bytes:
    return quarantine_record(
        {
            "sourceId": source.id,
            "receivedAt": received_at.isoformat(),
            "index": index,
            "messageId": message_id,
            "code": code,
            "reason": reason,
            "raw": bytes(raw).decode("utf-8", errors="replace"),
        }
    )
