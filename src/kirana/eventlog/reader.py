"""Read a segment log that another process writes.

``kirana serve`` runs the HTTP API and the log's writer in one process and the
consumers in a worker process, so consumer work never competes with request
handling for one interpreter lock. The worker reads the same segment files
through this class: it sees only durable bytes (the writer's published end,
:mod:`kirana.eventlog.durable_end`), discovers new segments as the writer
rolls, and may delete consumed segments (retention) — appends are the one
thing it cannot do.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kirana.eventlog.durable_end import DurableEnd
from kirana.eventlog.protocol import LogUnavailable, ReadResult
from kirana.eventlog.segments import READ_CHUNK, read_segments, segment_bases, segment_name


class FileLogReader:
    """The read side of :class:`kirana.eventlog.segments.FileEventLog`, for another process."""

    def __init__(self, directory: Path, *, poll_seconds: float = 0.005) -> None:
        self.directory = Path(directory)
        self._end_file = DurableEnd(self.directory, writable=False)
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._bases: list[int] = []
        self._fds: dict[int, int] = {}
        self._rescan()

    def _rescan(self) -> None:
        with self._lock:
            self._bases = segment_bases(self.directory) or [0]

    def _current(self) -> int:
        """The durable end, after making sure the segment list covers it."""
        end, active = self._end_file.read()
        if active != self._bases[-1]:
            self._rescan()
        return end

    @property
    def end_offset(self) -> int:
        return self._current()

    @property
    def start_offset(self) -> int:
        self._current()
        while len(self._bases) > 1 and not (self.directory / segment_name(self._bases[0])).exists():
            self._rescan()
        return self._bases[0]

    @property
    def pending_bytes(self) -> int:
        return 0

    def lag(self, position: int) -> int:
        return max(0, self._current() - position)

    async def append(self, payloads: Sequence[bytes]) -> list[int]:
        raise LogUnavailable("this process only reads the event log; appends go to its writer")

    def append_sync(self, payloads: Sequence[bytes]) -> list[int]:
        raise LogUnavailable("this process only reads the event log; appends go to its writer")

    def _fd(self, base: int) -> int:
        with self._lock:
            fd = self._fds.get(base)
            if fd is None:
                fd = os.open(self.directory / segment_name(base), os.O_RDONLY)
                self._fds[base] = fd
            return fd

    def read(
        self, offset: int, max_records: int = 10_000, max_bytes: int = READ_CHUNK
    ) -> ReadResult:
        end = self._current()
        if offset > end:
            raise ValueError(f"offset {offset} is beyond the log's durable end {end}")
        return read_segments(self._bases, end, offset, max_records, max_bytes, self._fd)

    def wait_for(self, offset: int, timeout: float) -> bool:
        """Poll the published end (every few ms) until it passes ``offset``."""
        deadline = time.monotonic() + timeout
        while True:
            if self._current() > offset:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self._poll, remaining))

    def trim(self, before: int, *, min_age_seconds: float = 0.0) -> int:
        """Delete whole consumed segments (the writer notices on its next read)."""
        self._current()
        freed = 0
        while len(self._bases) > 1 and self._bases[1] <= before:
            base, following = self._bases[0], self._bases[1]
            path = self.directory / segment_name(base)
            try:
                if time.time() - path.stat().st_mtime < min_age_seconds:
                    break
                path.unlink()
            except FileNotFoundError:
                pass
            with self._lock:  # by value: a concurrent rescan may have replaced the list
                fd = self._fds.pop(base, None)
                if fd is not None:
                    os.close(fd)
                self._bases = [b for b in self._bases if b != base]
            freed += following - base
        return freed

    def redact(self, matches: Callable[[bytes], bool]) -> int:
        raise LogUnavailable("redaction runs in the process that writes the event log")

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
        self._end_file.close()
