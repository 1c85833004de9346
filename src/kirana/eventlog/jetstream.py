"""The event log on NATS JetStream (``log.backend = "nats"``).

The same :class:`kirana.eventlog.protocol.EventLog` as the segment files, so consumers,
the lake loader and erasure do not know which one runs (docs/decisions.md, "The event
log on NATS JetStream"):

* **Appends.** One ``append`` is one compressed message
  (:mod:`kirana.eventlog.jetstream_codec`), so it is stored whole or not at all; one
  that does not fit the server's ``max_payload`` raises :class:`AppendTooLarge` before
  anything is published. It carries a ``Nats-Msg-Id``; the call returns only after
  JetStream's publish ack (file storage, ``log.nats_replicas`` copies). A publish whose
  ack does not come is retried with the *same* id, so the stream's duplicate window
  stores it once; a client retrying a whole request gets a new id and the lake's
  messageId index drops the repeats.
* **Reads** use batched direct gets from a sequence, in stream order, any process.
  Consumers keep their own committed positions (the Delta ``txn``, SQLite), written
  atomically with their output, so no JetStream consumer objects are involved.
* **Backpressure.** A full stream (``log.nats_max_bytes_mb``, discard-new) or an ack
  that never comes raises :class:`LogBusy` (429 with ``Retry-After``); an unreachable
  server raises :class:`LogUnavailable` (503). Nothing is acknowledged in either case.
* **Redaction** cannot edit a stored message: the message is republished with the
  erased records replaced by tombstones to ``<stream>_REDACTED`` (subject
  ``<subject>.redacted.<original sequence>``) and the original is deleted with
  JetStream's secure delete, which overwrites its bytes. Readers that meet the gap
  read the replacement at the original offsets, so every other record keeps its
  offset and no consumer sees an event twice. Secure delete reaches only the stream's
  message store: with ``log.nats_replicas`` > 1 each server's Raft log of the stream
  (``$SYS/_js_/S-R<n>F-*/msgs/*.blk``) still holds the original entry until NATS next
  snapshots the stream and compacts that log, every 2-3 minutes (NATS 2.15.1, not
  configurable; a server that is down keeps it until it is back). Nothing here can
  shorten that; crypto-shredding would (docs/decisions.md).

nats-py is asyncio; this class runs one private event loop in a thread and the blocking
methods hand coroutines to it, so the log works from the API's loop, from consumer
threads and from scripts alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig
except ModuleNotFoundError as missing:  # an optional dependency: the ``nats`` extra
    raise ModuleNotFoundError(
        'log.backend = "nats" needs nats-py: install Kirana with its `nats` extra '
        "(uv sync --extra nats)"
    ) from missing

from kirana.eventlog.jetstream_codec import decode, encode, offset_of, pack, redacted, split_offset
from kirana.eventlog.protocol import (
    AppendTooLarge,
    LogBusy,
    LogRecord,
    LogUnavailable,
    ReadResult,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_HEADER_ROOM = 512  # Nats-Msg-Id and the other headers share max_payload with the body
_READ_MESSAGES = 512
_READ_BYTES = 4 * 1024 * 1024
_PUBLISH_ATTEMPTS = 3
_FULL_CODES = {10077, 10047, 10023}  # maximum messages/bytes exceeded, insufficient resources


def server_urls(url: str) -> list[str]:
    """``log.nats_url`` as a server list (a cluster is written comma-separated)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def safe_url(url: str) -> str:
    """``url`` without credentials, for messages and logs (secrets are write-only)."""
    shown = []
    for server in server_urls(url):
        parts = urlsplit(server)
        if "@" in parts.netloc:
            host = parts.netloc.rsplit("@", 1)[1]
            server = f"{parts.scheme}://***@{host}"
        shown.append(server)
    return ",".join(shown)


@dataclass(slots=True)
class _Message:
    """One stored append: its original sequence, body, and where a redacted copy lives.

    Decoded on first use: a read of 10,000 records uses a few of the up to 512 messages
    one direct get returns, and decompressing the rest for nothing halved read speed."""

    sequence: int
    body: bytes
    replacement_sequence: int | None = None
    _records: list[bytes] | None = None

    @property
    def records(self) -> list[bytes]:
        if self._records is None:
            self._records = decode(self.body, self.sequence)
        return self._records


class JetStreamEventLog:
    """:class:`kirana.eventlog.EventLog` over one JetStream stream."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "KIRANA_EVENTS",
        subject: str = "kirana.events",
        replicas: int = 1,
        max_bytes: int = 0,
        duplicate_window_seconds: float = 120.0,
        ack_timeout: float = 2.0,
    ) -> None:
        self.stream = stream
        self.redacted_stream = f"{stream}_REDACTED"
        self.subject = subject
        self._notices = f"{subject}.acked"
        self._url = url
        self._replicas = replicas
        self._max_bytes = max_bytes
        self._duplicate_window = duplicate_window_seconds
        self._ack_timeout = ack_timeout
        self._pending = 0
        self._known_last = 0
        self._message_bytes = 1  # average size of a stored message, for lag estimates
        self._closed = False
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="eventlog-nats", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._connect(), timeout=60)
        except BaseException:
            self._stop_loop()
            raise

    # -- the private event loop -----------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop.is_closed():
            coroutine.close()
            raise LogUnavailable("event log is closed")
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
        except (nats.errors.Error, TimeoutError) as exc:  # consumers back off and retry
            raise LogUnavailable(
                f"NATS at {safe_url(self._url)}: {type(exc).__name__}: {exc}"
            ) from exc

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            log.warning("event log: NATS %s: %s", safe_url(self._url), exc)

        try:
            self._nc = await nats.connect(
                server_urls(self._url),
                name="kirana-eventlog",
                connect_timeout=5,
                allow_reconnect=True,
                max_reconnect_attempts=2,  # at start: fail within seconds (then: forever)
                reconnect_time_wait=0.5,
                # no buffering while disconnected: an append the caller was told failed
                # must not be stored later, when the connection comes back
                pending_size=0,
                error_cb=on_error,
            )
        except Exception as exc:
            raise LogUnavailable(
                f"cannot reach NATS at {safe_url(self._url)} (log.nats_url): {exc}"
            ) from exc
        # once connected, reconnect for as long as it takes (nats-py reads this per attempt)
        self._nc.options["max_reconnect_attempts"] = -1
        self._js = self._nc.jetstream(timeout=self._ack_timeout * 2)
        try:
            await self._ensure_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[self.subject],
                    storage=StorageType.FILE,
                    num_replicas=self._replicas,
                    duplicate_window=self._duplicate_window,
                    max_bytes=self._max_bytes or -1,
                    discard=DiscardPolicy.NEW,
                    allow_direct=True,
                )
            )
            await self._ensure_stream(
                StreamConfig(
                    name=self.redacted_stream,
                    subjects=[f"{self.subject}.redacted.*"],
                    storage=StorageType.FILE,
                    num_replicas=self._replicas,
                    allow_direct=True,
                )
            )
            await self._nc.subscribe(self._notices, cb=self._on_notice)
            self._known_last = (await self._bounds())[1]
        except Exception as exc:  # e.g. a cluster still electing its JetStream leader
            await self._nc.close()
            raise LogUnavailable(
                f"cannot set up JetStream stream {self.stream} at {safe_url(self._url)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    async def _ensure_stream(self, config: StreamConfig) -> None:
        try:
            await self._js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
        else:
            await self._js.update_stream(config)

    async def _on_notice(self, msg: Any) -> None:
        """Another writer (or this one) had a message acknowledged: wake waiting readers."""
        with contextlib.suppress(ValueError):
            self._saw_last(int(msg.data))

    def _saw_last(self, sequence: int) -> None:
        with self._changed:
            if sequence > self._known_last:
                self._known_last = sequence
                self._changed.notify_all()

    # -- appending ------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes published and not yet acknowledged by JetStream."""
        return self._pending

    async def append(self, payloads: Sequence[bytes]) -> list[int]:
        future = asyncio.run_coroutine_threadsafe(self._append(payloads), self._loop)
        return await asyncio.wrap_future(future)

    def append_sync(self, payloads: Sequence[bytes]) -> list[int]:
        return self._run(self._append(payloads))

    async def _append(self, payloads: Sequence[bytes]) -> list[int]:
        if self._closed:
            raise LogUnavailable("event log is closed")
        if not payloads:
            return []
        # one message or nothing: AppendTooLarge here, before anything is published
        body = encode(payloads, self._nc.max_payload - _HEADER_ROOM)
        size = sum(len(p) for p in payloads)
        self._pending += size
        try:
            sequence = await self._publish(body, uuid.uuid4().hex)
        finally:
            self._pending -= size
        return [offset_of(sequence, i) for i in range(len(payloads))]

    async def _publish(self, body: bytes, message_id: str) -> int:
        """Publish until JetStream acknowledges; the same id on every attempt, so a
        message stored whose ack was lost is not stored twice."""
        headers = {"Nats-Msg-Id": message_id}
        disconnected = False
        for attempt in range(_PUBLISH_ATTEMPTS):
            try:
                ack = await self._js.publish(
                    self.subject, body, timeout=self._ack_timeout, headers=headers
                )
            except (TimeoutError, nats.errors.TimeoutError):
                log.warning("event log: JetStream ack timed out (attempt %d)", attempt + 1)
                continue
            except nats.errors.OutboundBufferLimitError:  # reconnecting: wait a little
                disconnected = True
                await asyncio.sleep(self._ack_timeout / _PUBLISH_ATTEMPTS)
                continue
            except nats.js.errors.APIError as exc:
                if exc.err_code in _FULL_CODES:
                    raise LogBusy(f"JetStream stream {self.stream} is full: {exc}") from exc
                if exc.code == 503:  # e.g. the stream is electing a new leader
                    raise LogBusy(f"JetStream cannot take appends right now: {exc}") from exc
                raise LogUnavailable(f"JetStream refused the append: {exc}") from exc
            except (nats.errors.Error, OSError) as exc:
                raise LogUnavailable(
                    f"NATS at {safe_url(self._url)} is unavailable: {type(exc).__name__}"
                ) from exc
            self._saw_last(ack.seq)
            with contextlib.suppress(nats.errors.Error):  # a hint for readers: never fatal
                await self._nc.publish(self._notices, str(ack.seq).encode())
            return ack.seq
        if disconnected:
            raise LogUnavailable(f"NATS at {safe_url(self._url)} is unreachable (reconnecting)")
        raise LogBusy(
            f"JetStream did not acknowledge within {self._ack_timeout:g} s "
            f"({_PUBLISH_ATTEMPTS} attempts)"
        )

    # -- positions ------------------------------------------------------------

    async def _bounds(self) -> tuple[int, int]:
        """``(first, last)`` sequence of the stream as the server has it now."""
        state = (await self._js.stream_info(self.stream)).state
        return state.first_seq, state.last_seq

    async def _replaced(self) -> dict[int, str]:
        """Original sequences that have a redacted replacement, and its subject."""
        info = await self._js.stream_info(
            self.redacted_stream, subjects_filter=f"{self.subject}.redacted.*"
        )
        subjects = info.state.subjects or {}
        return {int(s.rsplit(".", 1)[1]): s for s in subjects}

    async def _first_readable(self) -> int:
        first, last = await self._bounds()
        first = max(first, 1)
        replaced = await self._replaced()
        if replaced:  # a redacted first message moved first_seq; its replacement still counts
            first = min(first, min(replaced))
        return first if first <= last else last + 1

    def _bounds_or_cached(self) -> tuple[int, int]:
        try:
            first, last = self._run(self._bounds(), timeout=self._ack_timeout * 3)
        except Exception as exc:  # status pages and lag keep working while NATS reconnects
            log.warning("event log: NATS unreachable, using the last known end: %s", exc)
            return self._known_last, self._known_last
        self._saw_last(last)
        return first, last

    @property
    def end_offset(self) -> int:
        return offset_of(self._bounds_or_cached()[1] + 1)

    def lag(self, position: int) -> int:
        """Messages from ``position``'s on, times the stream's average message size."""
        try:
            state = self._run(self._js.stream_info(self.stream), timeout=self._ack_timeout * 3)
        except LogUnavailable as exc:  # status pages keep working while NATS reconnects
            log.warning("event log: NATS unreachable, lag from the last known end: %s", exc)
            last = self._known_last
        else:
            last = state.state.last_seq
            self._saw_last(last)
            if state.state.messages:
                self._message_bytes = state.state.bytes // state.state.messages
        return max(0, last + 1 - split_offset(position)[0]) * self._message_bytes

    @property
    def start_offset(self) -> int:
        return offset_of(self._run(self._first_readable(), timeout=self._ack_timeout * 3))

    def wait_for(self, offset: int, timeout: float) -> bool:
        """Wake on acknowledgement notices; ask the server at least every 0.25 s (a
        notice can be missed while reconnecting)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                if offset_of(self._known_last + 1) > offset:
                    return True
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._changed.wait(min(remaining, 0.25))
            if offset_of(self._known_last + 1) > offset:
                return True
            if offset_of(self._bounds_or_cached()[1] + 1) > offset:
                return True
            if time.monotonic() >= deadline:
                return False

    # -- reading --------------------------------------------------------------

    def read(self, offset: int, max_records: int = 10_000) -> ReadResult:
        return self._run(self._read(offset, max_records))

    async def _read(self, offset: int, max_records: int) -> ReadResult:
        sequence, index = split_offset(offset)
        first, last = await self._bounds()
        self._saw_last(last)
        end = offset_of(last + 1)
        if offset > end:
            raise ValueError(f"offset {offset} is beyond the log's end {end}")
        if sequence < max(first, 1) and sequence < await self._first_readable():
            raise ValueError(f"offset {offset} is before the log's start (retention)")
        records: list[LogRecord] = []
        while True:
            messages, exhausted = await self._messages(sequence, last)
            for message in messages:
                start = index if message.sequence == sequence else 0
                for i in range(start, len(message.records)):
                    if len(records) >= max_records:
                        return ReadResult(records, offset_of(message.sequence, i))
                    records.append(LogRecord(offset_of(message.sequence, i), message.records[i]))
            if not messages and not exhausted:  # never skip ahead over what was not read
                raise LogUnavailable(f"JetStream returned nothing from sequence {sequence}")
            if messages:
                sequence, index = messages[-1].sequence + 1, 0
            if exhausted:
                return ReadResult(records, max(offset, offset_of(sequence, index), end))
            if len(records) >= max_records:
                return ReadResult(records, offset_of(sequence, index))

    async def _messages(self, sequence: int, last: int) -> tuple[list[_Message], bool]:
        """Messages from ``sequence`` in order, replacements read in place of the
        originals they stand for; ``True`` when the stream (up to ``last``) is done."""
        found, exhausted = await self._direct_batch(sequence)
        messages: list[_Message] = []
        expected = sequence
        replaced: dict[int, str] | None = None
        upto = last if exhausted else (found[-1][0] if found else sequence)
        for stored, body in [*found, (upto + 1, None)]:
            if stored > expected:  # a gap: deleted by redaction (or trimmed meanwhile)
                replaced = replaced if replaced is not None else await self._replaced()
                for missing in sorted(s for s in replaced if expected <= s < stored):
                    messages.append(await self._replacement(missing, replaced[missing]))
            if body is not None:
                messages.append(_Message(stored, body))
            expected = stored + 1
        return messages, exhausted

    async def _replacement(self, sequence: int, subject: str) -> _Message:
        msg = await self._js.get_last_msg(self.redacted_stream, subject, direct=True)
        return _Message(sequence, msg.data or b"", msg.seq)

    async def _direct_batch(self, sequence: int) -> tuple[list[tuple[int, bytes]], bool]:
        """A batched direct get (NATS server 2.11 or newer): stored messages from
        ``sequence`` on, and whether none are left after them."""
        inbox = self._nc.new_inbox()
        subscription = await self._nc.subscribe(inbox)
        request = {
            "seq": max(sequence, 1),
            "batch": _READ_MESSAGES,
            "max_bytes": max(_READ_BYTES, 2 * self._nc.max_payload),  # a whole message fits
            "next_by_subj": self.subject,
        }
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(request).encode(), reply=inbox
            )
            found: list[tuple[int, bytes]] = []
            while True:
                msg = await subscription.next_msg(timeout=self._ack_timeout * 3)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status == "404":
                    return found, True
                if status == "204":  # end of batch
                    return found, headers.get("Nats-Num-Pending", "0") == "0"
                if status:
                    raise LogUnavailable(f"JetStream direct get failed with status {status}")
                found.append((int(headers["Nats-Sequence"]), msg.data))
        except nats.errors.TimeoutError as exc:
            raise LogUnavailable(f"JetStream did not answer a read from {sequence}") from exc
        finally:
            await subscription.unsubscribe()

    # -- retention ------------------------------------------------------------

    def trim(self, before: int, *, min_age_seconds: float = 0.0) -> int:
        return self._run(self._trim(before, min_age_seconds))

    async def _trim(self, before: int, min_age_seconds: float) -> int:
        """Purge whole messages before ``before`` whose age passed ``min_age_seconds``."""
        first, last = await self._bounds()
        cut = min(split_offset(before)[0], last + 1)
        if cut <= first:
            return 0
        if min_age_seconds > 0:
            cut = await self._young_from(first, cut, min_age_seconds)
            if cut <= first:
                return 0
        before_bytes = (await self._js.stream_info(self.stream)).state.bytes
        await self._js.purge_stream(self.stream, seq=cut)
        replaced = await self._replaced()
        for original in (s for s in replaced if s < cut):
            await self._delete_replacement(replaced[original])
        return max(0, before_bytes - (await self._js.stream_info(self.stream)).state.bytes)

    async def _young_from(self, low: int, high: int, min_age_seconds: float) -> int:
        """The first sequence in ``[low, high)`` stored less than ``min_age_seconds`` ago
        (``high`` if none): stream time grows with sequence, so a binary search."""
        threshold = datetime.now(UTC) - timedelta(seconds=min_age_seconds)
        while low < high:
            middle = (low + high) // 2
            try:
                msg = await self._js.get_msg(
                    self.stream, middle, subject=self.subject, direct=True, next=True
                )
            except nats.js.errors.NotFoundError:
                high = middle
                continue
            young = msg.seq >= high or msg.time is None or msg.time > threshold
            if young:
                high = middle
            else:
                low = msg.seq + 1
        return low

    async def _delete_replacement(self, subject: str) -> None:
        try:
            msg = await self._js.get_last_msg(self.redacted_stream, subject, direct=True)
            await self._js.delete_msg(self.redacted_stream, msg.seq)
        except nats.js.errors.NotFoundError:
            pass

    # -- privacy --------------------------------------------------------------

    def redact(self, matches: Callable[[bytes], bool]) -> int:
        return self._run(self._redact(matches))

    async def _redact(self, matches: Callable[[bytes], bool]) -> int:
        """Republish each message holding a match without it, then securely delete the
        original (or the previous replacement): the replacement is acknowledged first,
        so a crash in between leaves the original readable and a rerun finishes."""
        count = 0
        sequence = await self._first_readable()
        _, last = await self._bounds()
        while sequence <= last:
            messages, exhausted = await self._messages(sequence, last)
            for message in messages:
                records, hits = redacted(message.records, matches)
                if hits:
                    await self._republish(message, records)
                    count += hits
            if exhausted:
                break
            if not messages:  # an erasure must not report done over messages it never saw
                raise LogUnavailable(f"JetStream returned nothing from sequence {sequence}")
            sequence = messages[-1].sequence + 1
        return count

    async def _republish(self, message: _Message, records: list[bytes]) -> None:
        subject = f"{self.subject}.redacted.{message.sequence}"
        try:
            try:
                body = encode(records, self._nc.max_payload - _HEADER_ROOM)
            except AppendTooLarge:  # an old plain body of incompressible records
                body = pack(records)  # tombstones are shorter: fits where the original did
            ack = await self._js.publish(subject, body, timeout=self._ack_timeout)
            if message.replacement_sequence is None:
                await self._js.delete_msg(self.stream, message.sequence)
            else:
                await self._js.delete_msg(self.redacted_stream, message.replacement_sequence)
        except nats.errors.Error as exc:
            raise LogUnavailable(
                f"redaction of JetStream message {message.sequence} failed: {exc}; "
                "run the erasure again"
            ) from exc
        log.info("event log: redacted message %d (replacement %d)", message.sequence, ack.seq)

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._nc.close(), timeout=30)
        except Exception:  # closing: nothing left to protect
            log.exception("event log: closing the NATS connection failed")
        with self._changed:
            self._changed.notify_all()
        self._stop_loop()

    def __enter__(self) -> JetStreamEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
