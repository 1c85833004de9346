"""The decision log's hand-over: API processes spool their batches as Arrow files, and one
process appends them to the Delta table.

Why: appending a second's decisions to Delta (Parquet encoding and compression of ~5 MB of
decision JSON at 1,000 decisions/s, a commit) costs ~20 ms of CPU and holds the GIL for
parts of it, and handing a batch to another process through a pipe means pickling it
(1-14 ms under the GIL). Either, done inside an API process once a second, queued that
process's requests behind it: measured with two API processes at 1,000 requests/s, p99
12.6 ms with the appends in the first API process and 4.2 ms with them held back. Writing an
Arrow IPC file is a copy done by Arrow without the GIL, so every API process spools its own
batch (:class:`DecisionSpool`), and the table's one writer (:class:`DecisionTableWriter`) — the
consumer worker under ``kirana serve``, which runs at a lower priority, or the process itself
when there is no worker — turns whatever is spooled into one commit a second.

Only the first API process decides when a spool is appended (its decision log's flush, under
the lock an erasure holds), so appends and an erasure's rewrite of the table never overlap,
and an erasure appends everything spooled before it deletes. Files are deleted once their
rows are committed, before any compaction (which may fail on its own). A file whose rows
were committed by an append that died before deleting it is recognised by name (each commit
records the files it took) and not appended twice. Spooled files outlive a crash of any
process and are appended on the next flush; a clean shutdown appends everything. They are
not fsync'd (decisions are offline evaluation's record, and the flush thread should not
wait on the disk): after a power loss, a file the disk did not finish is unreadable, and
like any file that is not a decisions batch it is moved to ``rejected/`` (logged, counted in
``/v1/status``) rather than stopping every later append.

The spool is bounded: when the appends stop (the consumer worker cannot write the lake) it
would grow by the decision rate's ~5 MB a second. Past ``max_bytes`` spooled by all
processes, :meth:`DecisionSpool.put` refuses the batch (:class:`SpoolFull`); the decision log
counts those decisions as dropped and reports why in ``/v1/status``. Decisions are offline
evaluation's record, not user data, so dropping the newest beats filling the disk the event
log and the lake share.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import TableNotFoundError

from kirana.lake.appends import append_with_retries, compact_table

log = logging.getLogger(__name__)

SUFFIX = ".arrow"
#: the commit metadata key naming the spooled files a commit took
COMMITTED_FILES = "kirana.decision_spool"
#: where files that are not a readable decisions batch are moved, under the spool
REJECTED = "rejected"
#: a ``.partial`` file this old was left by a process that died writing it
STALE_PARTIAL_SECONDS = 600


def spool_dir(state_dir: Path) -> Path:
    return state_dir / "decision-spool"


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already: the batch was not written (and is dropped)."""


class DecisionSpool:
    """One process's end of the spool directory: writes its batches, lists everyone's."""

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        max_bytes: int | None = None,
        measure_seconds: float = 5.0,
    ) -> None:
        self.directory = directory
        self.schema = schema
        #: refuse batches while every process's spooled files hold this many bytes
        self.max_bytes = max_bytes
        #: measure the spool (a directory listing) at most this often; between, count our own
        self._measure_seconds = measure_seconds
        self._measured_at = float("-inf")
        self._spooled = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._sequence = itertools.count()
        self._remove_stale_partials()

    def _remove_stale_partials(self) -> None:
        """Delete what processes that died mid-write left (never another's file in flight:
        a batch takes milliseconds to write)."""
        cutoff = time.time() - STALE_PARTIAL_SECONDS
        for partial in self.directory.glob(".*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()

    def put(self, table: pa.Table) -> Path:
        """Write ``table`` as one Arrow file, whole or not at all (written under a
        temporary name, then renamed): a reader never sees a partial file. Raises
        :class:`SpoolFull` (writing nothing) past ``max_bytes``."""
        if table.schema != self.schema:
            raise ValueError(f"spooled decisions must have the decisions schema: {table.schema}")
        self._check_room()
        # names sort in the order the batches were made (per process exactly, across
        # processes to the clock's resolution): rows reach the table roughly in time order
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):06d}"
        partial = self.directory / f".{name}.partial"
        try:
            with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, self.schema) as out:
                out.write_table(table)
        except BaseException:  # a full disk: leave nothing behind that nothing deletes
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        final = self.directory / f"{name}{SUFFIX}"
        os.replace(partial, final)
        self._spooled += final.stat().st_size
        return final

    def _check_room(self) -> None:
        if self.max_bytes is None:
            return
        now = time.monotonic()
        if now - self._measured_at >= self._measure_seconds:
            self._spooled = backlog(self.directory)[1]
            self._measured_at = now
        if self._spooled >= self.max_bytes:
            raise SpoolFull(
                f"the decision spool {self.directory} holds {self._spooled:,} bytes, the limit "
                f"is {self.max_bytes:,} (automation.decision_spool_max_mb): decisions are not "
                "reaching the decisions table; see the consumer worker's log"
            )

    def pending(self, max_bytes: int | None = None) -> list[str]:
        """Every complete spooled file, oldest first; with ``max_bytes``, only the oldest
        files up to that size (at least one), so a backlog is appended in bounded steps."""
        paths = sorted(str(path) for path in self.directory.glob(f"*{SUFFIX}"))
        if max_bytes is None:
            return paths
        taken, size = [], 0
        for path in paths:
            try:
                size += os.stat(path).st_size
            except FileNotFoundError:  # appended meanwhile
                continue
            if taken and size > max_bytes:
                break
            taken.append(path)
        return taken


def rejected(directory: Path) -> int:
    """Files moved aside as not a readable decisions batch (an operator's to look at)."""
    return sum(1 for _ in (directory / REJECTED).glob(f"*{SUFFIX}"))


def backlog(directory: Path) -> tuple[int, int]:
    """Spooled files not yet appended, and their bytes (all processes')."""
    files = size = 0
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            size += path.stat().st_size
        except FileNotFoundError:  # appended meanwhile
            continue
        files += 1
    return files, size


class DecisionTableWriter:
    """The decisions table's one writer: a batch, or every spooled file, per commit,
    compacted every ``compact_every`` commits."""

    def __init__(
        self,
        table_path: Path,
        schema: pa.Schema,
        configuration: dict[str, str],
        compact_every: int = 100,
    ) -> None:
        self.path = table_path
        self.schema = schema
        self.configuration = configuration
        self.compact_every = compact_every
        self._commits = 0
        self._lock = threading.Lock()  # a caller that timed out may call again at once
        #: False until this process has committed once: only an earlier process's append
        #: can have died between its commit and deleting its files
        self._checked = False

    def append_spooled(self, paths: Sequence[str]) -> int:
        """Append the rows of ``paths`` (spooled files, oldest first) in one commit, then
        delete the files; returns the rows appended. Files already gone were appended by
        an earlier call; files an earlier commit took are only deleted. Returns 0 at once
        while an earlier call still runs (its caller timed out): the next flush comes soon,
        and a caller's thread is not parked behind it."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            rows = self._append_spooled(paths)
        except BaseException:
            self._checked = False  # did the commit land? the next call reads the history
            raise
        finally:
            self._lock.release()
        self._maybe_compact()
        return rows

    def _append_spooled(self, paths: Sequence[str]) -> int:
        done = set() if self._checked else self._committed_before()
        tables, taken = [], []
        for path in paths:
            name = Path(path).name
            if name in done:
                continue
            table = self._read(Path(path))
            if table is not None:
                tables.append(table)
                taken.append(name)
        rows = sum(t.num_rows for t in tables)
        if tables:
            self._commit(pa.concat_tables(tables), taken)
        self._checked = True
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return rows

    def _read(self, path: Path) -> pa.Table | None:
        """The batch in ``path``; None when it is gone, or not a readable decisions batch
        (then moved to ``rejected/``: one such file must not stop every append)."""
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except FileNotFoundError:
            return None
        except (pa.ArrowInvalid, OSError) as exc:
            self._reject(path, f"unreadable ({exc})")
            return None
        if table.schema != self.schema:
            self._reject(path, f"not the decisions schema ({table.schema})")
            return None
        return table

    def _reject(self, path: Path, why: str) -> None:
        aside = path.parent / REJECTED
        aside.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, aside / path.name)
            log.error("decision spool: %s is %s; moved to %s", path.name, why, aside)

    def append_table(self, table: pa.Table) -> None:
        """One commit of ``table`` (a batch not spooled: a log without a spool)."""
        self._commit(table, ())
        self._maybe_compact()

    def _commit(self, table: pa.Table, spooled: Sequence[str]) -> None:
        """One commit of ``table``, recording the ``spooled`` files it holds."""
        properties = CommitProperties(custom_metadata={COMMITTED_FILES: list(spooled)})
        append_with_retries(
            self.path, table, configuration=self.configuration, commit_properties=properties
        )
        self._commits += 1

    def _maybe_compact(self) -> None:
        """Compact every ``compact_every`` commits. A failure is logged, not raised: the
        rows are committed, and the next try comes ``compact_every`` commits later."""
        if self._commits < self.compact_every:
            return
        self._commits = 0
        try:
            self.compact()
        except Exception:
            log.exception("decision spool: compacting %s failed; will try again later", self.path)

    def _committed_before(self) -> set[str]:
        """Spooled files the table's latest commits took (an append that died before it
        deleted them leaves them behind)."""
        try:
            history = DeltaTable(self.path).history(10)
        except TableNotFoundError:
            return set()
        return {name for commit in history for name in commit.get(COMMITTED_FILES) or ()}

    def compact(self) -> None:
        compact_table(DeltaTable(self.path), vacuum_hours=168)
        self._commits = 0
