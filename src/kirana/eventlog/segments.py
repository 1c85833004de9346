"""The embedded event log: append-only segment files with group commit.

Why hand-written: no maintained Python library offers an embeddable, fsync'd,
replayable append log (Kafka/NATS are servers; SQLite would double-write every
event through its WAL). The format is deliberately small:

* ``<dir>/<base offset, 20 digits>.seg`` files, each a run of frames
  (:mod:`kirana.eventlog.framing`); an offset is the global byte position of a
  frame, so a segment's file name is the offset of its first byte.
* One writer thread. Appenders hand it payloads and wait; it writes everything
  queued since its last turn with one ``write`` and one ``fdatasync`` (group
  commit), then wakes all of them. Throughput therefore grows with
  concurrency while each acknowledgement still means "on disk".
* Readers see only bytes that have been fsync'd (``end_offset``), so no
  consumer can ever act on data that a crash could take back.
* On open, the tail of the last segment is scanned and anything after the last
  valid frame (a torn write) is cut off; those bytes were never acknowledged.
* After every fsync the writer publishes the durable end in ``<dir>/END``
  (:mod:`kirana.eventlog.durable_end`), so readers in other processes
  (:class:`kirana.eventlog.reader.FileLogReader`) see exactly what is durable.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from kirana.eventlog.durable_end import DurableEnd
from kirana.eventlog.framing import HEADER_SIZE, encode_frame, scan
from kirana.eventlog.protocol import (
    REDACTED,
    LogLocked,
    LogRecord,
    LogUnavailable,
    ReadResult,
)

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
READ_CHUNK = 4 * 1024 * 1024

Completion = Callable[[list[int] | BaseException], None]


def segment_name(base: int) -> str:
    return f"{base:020d}{SEGMENT_SUFFIX}"


def segment_bases(directory: Path) -> list[int]:
    """Base offsets of the segment files in ``directory``, ascending."""
    return sorted(
        int(p.name[: -len(SEGMENT_SUFFIX)])
        for p in directory.glob(f"*{SEGMENT_SUFFIX}")
        if p.name[: -len(SEGMENT_SUFFIX)].isdigit()
    )


def read_segments(
    bases: list[int],
    end: int,
    offset: int,
    max_records: int,
    max_bytes: int,
    fd_for: Callable[[int], int],
) -> ReadResult:
    """Durable records from ``offset`` up to ``end`` across the segments starting at
    ``bases`` (``fd_for(base)`` opens one for reading): shared by the writer's own reads
    and by :class:`kirana.eventlog.reader.FileLogReader` in other processes."""
    records: list[LogRecord] = []
    while offset < end and len(records) < max_records:
        index = bisect.bisect_right(bases, offset) - 1
        if index < 0:
            raise ValueError(f"offset {offset} is before the log's first segment {bases[0]}")
        base = bases[index]
        segment_end = bases[index + 1] if index + 1 < len(bases) else end
        if offset >= segment_end:  # exactly at a segment boundary
            offset = segment_end
            continue
        want = min(segment_end - offset, max_bytes)
        data = os.pread(fd_for(base), want, offset - base)
        result = scan(data, base=offset, limit=max_records - len(records))
        if not result.frames:
            if want < max_bytes or result.corrupt:
                raise LogUnavailable(f"corrupt record at offset {offset} in segment {base}")
            max_bytes *= 2  # a single record larger than the read window
            continue
        records.extend(map(LogRecord._make, result.frames))
        offset += result.valid_end
    return ReadResult(records, offset)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileEventLog:
    """Segment-file implementation of :class:`kirana.eventlog.EventLog`."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 128 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:  # two writers on one log would interleave frames: refuse the second
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise LogLocked(
                f"the event log in {self.directory} is in use by another process "
                "(is `kirana serve` running?)"
            ) from exc
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._cond = threading.Condition()
        self._durable = threading.Condition()
        self._queue: list[tuple[list[bytes], Completion]] = []
        self._queued_bytes = 0
        self._closed = False
        self._broken: BaseException | None = None
        self.truncated_bytes = 0
        self._bases: list[int] = []
        self._read_fds: dict[int, int] = {}
        self._read_lock = threading.Lock()
        self._recover()
        self._published = DurableEnd(self.directory, writable=True)
        self._published.publish(self._end, self._active_base)
        self._writer = threading.Thread(
            target=self._run_writer, name="eventlog-writer", daemon=True
        )
        self._writer.start()

    # -- opening and recovery -------------------------------------------------

    def _recover(self) -> None:
        bases = segment_bases(self.directory)
        if not bases:
            bases = [0]
            (self.directory / segment_name(0)).touch()
            _fsync_dir(self.directory)
        self._bases = bases
        last = self.directory / segment_name(bases[-1])
        valid_end = self._scan_valid_end(last)
        size = last.stat().st_size
        if valid_end < size:
            self.truncated_bytes = size - valid_end
            log.warning(
                "event log: cut %d bytes of torn or corrupt tail from %s", size - valid_end, last
            )
            with open(last, "r+b") as f:
                f.truncate(valid_end)
                f.flush()
                os.fsync(f.fileno())
        self._active_base = bases[-1]
        self._active_size = valid_end
        self._end = bases[-1] + valid_end
        self._fd = os.open(last, os.O_WRONLY | os.O_APPEND)

    @staticmethod
    def _scan_valid_end(path: Path) -> int:
        """Position after the last valid frame, reading the file in chunks."""
        pos = 0
        with open(path, "rb") as f:
            carry = b""
            while True:
                chunk = f.read(READ_CHUNK)
                if not chunk:
                    return pos
                buf = carry + chunk
                result = scan(buf)
                pos += result.valid_end
                if result.corrupt:
                    return pos
                carry = buf[result.valid_end :]

    # -- appending ------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self._queued_bytes

    @property
    def end_offset(self) -> int:
        return self._end

    @property
    def start_offset(self) -> int:
        self._forget_deleted_segments()
        return self._bases[0]

    def lag(self, position: int) -> int:
        return max(0, self._end - position)

    def submit(self, payloads: Sequence[bytes], done: Completion) -> None:
        """Queue payloads; ``done`` is called from the writer thread with offsets or an error."""
        frames = [encode_frame(p) for p in payloads]
        with self._cond:
            if self._broken is not None or self._closed:
                raise LogUnavailable(f"event log is not writable: {self._broken or 'closed'}")
            self._queue.append((frames, done))
            self._queued_bytes += sum(len(f) for f in frames)
            self._cond.notify()

    async def append(self, payloads: Sequence[bytes]) -> list[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()

        def resolve(result: list[int] | BaseException) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self.submit(payloads, lambda r: loop.call_soon_threadsafe(resolve, r))
        return await future

    def append_sync(self, payloads: Sequence[bytes]) -> list[int]:
        box: list[list[int] | BaseException] = []
        event = threading.Event()

        def done(result: list[int] | BaseException) -> None:
            box.append(result)
            event.set()

        self.submit(payloads, done)
        event.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
                batch_bytes, self._queued_bytes = self._queued_bytes, 0
            try:
                results = self._write_batch(batch, batch_bytes)
            except BaseException as exc:  # disk full, I/O error: nothing in batch is durable
                log.exception("event log write failed; refusing further appends")
                with self._cond:
                    self._broken = exc
                    failed, self._queue = self._queue, []
                error = LogUnavailable(f"event log write failed: {exc}")
                for _, done in batch + failed:
                    done(error)
                return
            for (_, done), offsets in zip(batch, results, strict=True):
                done(offsets)

    def _write_batch(
        self, batch: list[tuple[list[bytes], Completion]], nbytes: int
    ) -> list[list[int]]:
        if self._active_size > 0 and self._active_size + nbytes > self._segment_bytes:
            self._roll()
        position = self._end
        results: list[list[int]] = []
        for frames, _ in batch:
            offsets = []
            for frame in frames:
                offsets.append(position)
                position += len(frame)
            results.append(offsets)
        data = b"".join(frame for frames, _ in batch for frame in frames)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fdatasync(self._fd)
        self._active_size += len(data)
        with self._durable:
            self._end = position
            self._durable.notify_all()
        self._published.publish(position, self._active_base)
        return results

    def _roll(self) -> None:
        if self._fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        base = self._end
        path = self.directory / segment_name(base)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fsync_dir(self.directory)
        with self._read_lock:  # a new list: readers may be walking the old one
            self._bases = [*self._bases, base]
        self._active_base = base
        self._active_size = 0
        self._published.publish(self._end, base)
        # a worker process's retention deletes consumed segments; an fd kept open here
        # would hold their disk space until this process exits
        try:
            self._forget_deleted_segments()
        except OSError:  # housekeeping: never a reason to fail an append
            log.exception("event log: could not release deleted segments; will retry")

    # -- reading --------------------------------------------------------------

    def _read_fd(self, base: int) -> int:
        with self._read_lock:
            fd = self._read_fds.get(base)
            if fd is None:
                fd = os.open(self.directory / segment_name(base), os.O_RDONLY)
                self._read_fds[base] = fd
            return fd

    def read(
        self, offset: int, max_records: int = 10_000, max_bytes: int = READ_CHUNK
    ) -> ReadResult:
        end = self._end
        if offset < self.start_offset or offset > end:
            raise ValueError(f"offset {offset} outside the log ({self.start_offset}..{end})")
        # ``_bases`` is replaced, never changed in place, so this one reference is a
        # consistent snapshot even while retention or a roll runs in another thread
        return read_segments(self._bases, end, offset, max_records, max_bytes, self._read_fd)

    def wait_for(self, offset: int, timeout: float) -> bool:
        with self._durable:
            return self._durable.wait_for(lambda: self._end > offset or self._closed, timeout)

    # -- retention ------------------------------------------------------------

    def trim(self, before: int, *, min_age_seconds: float = 0.0) -> int:
        """Delete whole segments that end at or before ``before`` and are old enough."""
        import time

        freed = 0
        while len(self._bases) > 1 and self._bases[1] <= before:
            path = self.directory / segment_name(self._bases[0])
            if time.time() - path.stat().st_mtime < min_age_seconds:
                break
            with self._read_lock:
                base = self._bases[0]
                fd = self._read_fds.pop(base, None)
                if fd is not None:
                    os.close(fd)
                self._bases = self._bases[1:]
            freed += self._bases[0] - base
            path.unlink()
        if freed:
            _fsync_dir(self.directory)
        return freed

    def _forget_deleted_segments(self) -> None:
        """Drop segments another process (a consumer worker's retention) has deleted."""
        with self._read_lock:
            while (
                len(self._bases) > 1
                and not (self.directory / segment_name(self._bases[0])).exists()
            ):
                fd = self._read_fds.pop(self._bases[0], None)
                self._bases = self._bases[1:]
                if fd is not None:
                    os.close(fd)

    # -- privacy --------------------------------------------------------------

    def redact(self, matches: Callable[[bytes], bool]) -> int:
        """Overwrite matching records in place with same-length tombstones.

        The frame keeps its length (so every offset stays valid) and gets a
        fresh checksum; the payload becomes ``D`` plus spaces. Each segment is
        fsync'd after its rewrite.
        """
        count = 0
        end = self._end
        self._forget_deleted_segments()
        with self._read_lock:
            bases = list(self._bases)  # one snapshot: retention may delete segments meanwhile
        for index, base in enumerate(bases):
            segment_end = bases[index + 1] if index + 1 < len(bases) else end
            path = self.directory / segment_name(base)
            hits: list[tuple[int, int]] = []
            offset = base
            while offset < segment_end:
                try:
                    result = self.read(offset, 10_000)
                except (ValueError, FileNotFoundError):  # deleted by retention: nothing to redact
                    break
                for record in result.records:
                    if record.offset >= segment_end:
                        break
                    if record.payload[:1] != REDACTED and matches(record.payload):
                        hits.append((record.offset - base, len(record.payload)))
                if not result.records or result.next_offset >= segment_end:
                    break
                offset = result.next_offset
            if not hits:
                continue
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue
            try:
                for position, length in hits:
                    tombstone = encode_frame(REDACTED + b" " * (length - 1))
                    assert len(tombstone) == HEADER_SIZE + length
                    os.pwrite(fd, tombstone, position)
                os.fsync(fd)
            finally:
                os.close(fd)
            count += len(hits)
        return count

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._writer.join()
        with self._durable:
            self._durable.notify_all()
        os.close(self._fd)
        self._published.close()
        with self._read_lock:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
        os.close(self._lock_fd)

    def __enter__(self) -> FileEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
