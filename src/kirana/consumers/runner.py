"""Run consumers of the event log in background threads."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.redaction import remembered, scrub

log = logging.getLogger(__name__)


class Consumer(Protocol):
    """What the runner needs from a consumer."""

    name: str
    #: at most this many records are handed to ``handle`` at once
    max_batch: int
    #: wait this long for more records before handling a small batch (seconds)
    linger: float

    def position(self) -> int:
        """The offset to resume from (after recovery)."""
        ...

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        """Process records durably, then commit ``next_offset`` as the new position."""
        ...

    def idle(self) -> None:
        """Called when there is nothing to read: housekeeping (compaction, pruning)."""
        ...

    def close(self) -> None: ...


class ConsumerThread:
    """Drives one consumer: read, linger, handle, repeat; back off on errors."""

    def __init__(self, log_: EventLog, consumer: Consumer, *, poll: float = 0.5) -> None:
        self._log = log_
        self.consumer = consumer
        self._poll = poll
        self._stop = threading.Event()
        self.last_error: str | None = None
        self.errors = 0
        self._thread = threading.Thread(
            target=self._run, name=f"consumer-{consumer.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def lag(self) -> int:
        """Bytes the consumer is behind the log's end (estimated for JetStream)."""
        return self._log.lag(self.consumer.position())

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._step()
                backoff = 0.5
            except Exception as exc:  # keep consuming; the batch is retried from the position
                self.errors += 1
                self.last_error = scrub(f"{type(exc).__name__}: {exc}", remembered())
                log.exception("consumer %s failed; retrying in %.1fs", self.consumer.name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _step(self) -> None:
        consumer = self.consumer
        position = consumer.position()
        if self._log.end_offset <= position:
            consumer.idle()
            self._log.wait_for(position, self._poll)
            return
        started = time.monotonic()
        result = self._log.read(position, consumer.max_batch)
        records, next_offset = result.records, result.next_offset
        while len(records) < consumer.max_batch and not self._stop.is_set():
            remaining = consumer.linger - (time.monotonic() - started)
            if remaining <= 0:
                break
            if not self._log.wait_for(next_offset, remaining):
                continue
            more = self._log.read(next_offset, consumer.max_batch - len(records))
            records.extend(more.records)
            next_offset = more.next_offset
        consumer.handle(records, next_offset)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the consumer has caught up with the log (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.consumer.position() >= self._log.end_offset:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.consumer.close()
