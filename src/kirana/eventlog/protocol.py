"""The one interface every event-log backend implements.

Offsets are opaque, strictly increasing integers: a byte position for the
segment-file log, ``stream sequence << 20 | index within the message`` for NATS
JetStream (:mod:`kirana.eventlog.jetstream_codec`). A reader only ever
passes back an offset the log gave it (``LogRecord.offset`` or
``ReadResult.next_offset``), so callers never depend on which backend runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

REDACTED = b"D"
"""First byte of a redacted record's payload."""


class LogUnavailable(RuntimeError):
    """The log cannot make writes durable (disk error, closed, broken)."""


class LogBusy(LogUnavailable):
    """The log cannot take more right now (a server-side limit or an acknowledgement that
    did not come in time): nothing of the append was acknowledged, retry shortly (429)."""


class AppendTooLarge(LogUnavailable):
    """One append is more than the log can store as a unit (JetStream: one message
    within the server's ``max_payload``): refused before anything was stored (413)."""


class LogLocked(LogUnavailable):
    """Another process owns the log."""


class LogRecord(NamedTuple):
    """One durable record and where it starts.

    A named tuple rather than a frozen dataclass: every consumer builds one per event it
    reads, and a tuple is several times cheaper to make.
    """

    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Records read from a position, and the position to read from next."""

    records: list[LogRecord]
    next_offset: int


class EventLog(Protocol):
    """Append-only, durable, replayable record log."""

    async def append(self, payloads: Sequence[bytes]) -> list[int]:
        """Make ``payloads`` durable; return their offsets once they are on disk."""
        ...

    def append_sync(self, payloads: Sequence[bytes]) -> list[int]:
        """Blocking variant of :meth:`append` for scripts and tests."""
        ...

    def read(self, offset: int, max_records: int = 10_000) -> ReadResult:
        """Durable records from ``offset`` on (never ones not yet acknowledged)."""
        ...

    def wait_for(self, offset: int, timeout: float) -> bool:
        """Block until a record at or after ``offset`` is durable, or timeout."""
        ...

    @property
    def start_offset(self) -> int:
        """The oldest offset still readable."""
        ...

    @property
    def end_offset(self) -> int:
        """The offset the next appended record will get (all before it are durable)."""
        ...

    def lag(self, position: int) -> int:
        """Bytes between ``position`` and the end: how far a consumer there is behind.

        Exact for segment files; an estimate for JetStream (messages behind times their
        average size), whose offsets are not byte positions (so never ``end - position``).
        """
        ...

    @property
    def pending_bytes(self) -> int:
        """Bytes accepted for appending but not yet durable: the load-shedding signal."""
        ...

    def trim(self, before: int, *, min_age_seconds: float = 0.0) -> int:
        """Let the log discard records before ``before`` (every consumer is past them).

        Backends discard in whole units (segments), keep anything younger than
        ``min_age_seconds``, and return how many bytes they freed.
        """
        ...

    def redact(self, matches: Callable[[bytes], bool]) -> int:
        """Erase every record whose payload ``matches`` (privacy deletion); return the count.

        Offsets stay valid: a redacted record reads back as a tombstone payload
        (:data:`REDACTED`, followed by filler in segment files) that consumers skip.
        """
        ...

    def close(self) -> None:
        """Flush pending appends and release files."""
        ...
