"""The decision log: every personalise decision, with its propensities, in the Delta table
``decisions`` under the lake.

Why a Delta table, batched, rather than events in the event log:
at 1,000 decisions a second, events would cost an fsync'd append each batch *plus* a pass of
every consumer (lake loader, identity resolution, destinations) over rows that are not user
behaviour, and would land them in ``events`` where every query must filter them out. A
background thread here turns a second's decisions into one Arrow batch, and the batches of
every API process become one Delta append (about 1 commit a second, compacted every
``compact_every`` commits), which is the cheapest durable form for offline evaluation, and
DuckDB reads it next to ``events`` (``kirana sql "SELECT … FROM decisions"``).

The request path encodes its row (a tuple of plain column values, the decision as JSON:
~15 µs) and appends it to a deque; the thread only builds Arrow arrays and writes, work in C
and Rust that holds the GIL briefly or not at all. Encoding in the thread instead cost the
same CPU but stalled requests by 20-90 ms once a second (measured at ~1,500 decisions/s):
a thread running Python code keeps the GIL for the switch interval (5 ms) every time the
request thread lets go of it for a SQLite read, and a decision makes several. Encoded rows
also hold no objects the garbage collector must visit, where queued ``Decision`` objects
(~50 each) filled its older generations.

Under ``kirana serve`` no API process writes the table: each spools its batch as an Arrow
file (``writer``), and the first API process's flush has the spool appended (``collect``) by
the consumer worker (:mod:`kirana.serving.decision_spool`: why, and how an append is never
repeated). One writer keeps compaction and erasure (which rewrites the table while the
first process's flush is held) safe: a second writer's uncommitted file could be vacuumed
away under it. Without a ``writer`` the log appends to the table itself (tests, tools).

The price: decisions made in the last ``flush_seconds`` before a hard crash of their API
process (``kill -9``, power loss) are lost; spooled ones are appended after any process
crash (a power loss can cut one short: it is set aside); a clean shutdown flushes. The
feedback path does not depend on this log (tracking tokens carry what the statistics
need), so a lost decision costs one row of offline evaluation, never a wrong statistic. If
the writer falls ``max_pending`` decisions behind (the disk is stuck), the oldest are
dropped and counted rather than growing without bound; a batch the spool refuses (it is
full: nothing appends it) is dropped and counted at once.
"""

from __future__ import annotations

import logging
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from kirana.automation.ranking import Decision
from kirana.serving.decision_spool import DecisionTableWriter, SpoolFull

log = logging.getLogger(__name__)

TABLE = "decisions"
_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("decided_at", _TS),
        ("placement", pa.string()),
        ("user_key", pa.string()),
        ("profile_id", pa.string()),
        ("segment", pa.string()),
        ("policy", pa.string()),
        ("experiments", pa.string()),  # JSON list of {experiment_id, variation_id}
        ("widgets_shown", pa.int32()),
        ("top_widget", pa.string()),
        ("top_propensity", pa.float64()),
        ("decision", pa.string()),  # Decision.to_dict() as JSON: candidates, order, propensities
    ]
)
TABLE_CONFIGURATION = {
    # statistics only on columns that name no person (they would outlive an erasure)
    "delta.dataSkippingStatsColumns": "decision_id,decided_at,placement,segment,policy,top_widget",
}


@dataclass(frozen=True)
class LoggedRow:
    """One decision as the request path hands it over (``DecisionLog.append`` encodes it)."""

    decision: Decision
    profile_id: str | None
    policy: str
    experiments: tuple[dict[str, str], ...]


def table_path(lake_dir: Path) -> Path:
    return lake_dir / TABLE


class DecisionLog:
    """Buffer decisions and append them to Delta from a background thread."""

    def __init__(
        self,
        lake_dir: Path,
        *,
        flush_seconds: float = 1.0,
        max_pending: int = 200_000,
        compact_every: int = 100,
        writer: Callable[[pa.Table], object] | None = None,
        collect: Callable[[], object] | None = None,
    ) -> None:
        # None: append to the Delta table here; else where each flush's batch goes (a
        # spool, :mod:`kirana.serving.decision_spool`)
        self._writer = writer or table_writer(lake_dir, compact_every).append_table
        self._collect = collect  # after each flush: have the spool appended to the table
        self._flush_seconds = flush_seconds
        self._chunks: deque[_Chunk] = deque()
        self._queued = 0
        self._queue_lock = threading.Lock()  # the request thread appends, the writer takes
        self._max_pending = max_pending
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def append(self, row: LoggedRow) -> None:
        """Encode and queue one decision (no I/O: safe on the event loop). Past
        ``max_pending`` queued, the oldest chunks of decisions are dropped (and counted). The
        log is best effort for the request: a row that cannot be encoded is dropped and
        logged, and the decision is still served."""
        try:
            columns, decision = encode_row(row)
        except Exception:
            self.dropped += 1
            log.exception("decision log: cannot encode decision %s", row.decision.decision_id)
            return
        with self._queue_lock:
            chunks = self._chunks
            last = chunks[-1] if chunks else None
            if last is None or last.sealed or last.full:
                # whole chunks, oldest first, however small failed flushes left them
                while chunks and self._queued >= self._max_pending:
                    oldest = chunks.popleft()
                    self._queued -= len(oldest.rows)
                    self.dropped += len(oldest.rows)
                chunks.append(_Chunk())
            chunks[-1].add(columns, decision)
            self._queued += 1

    @property
    def queued(self) -> int:
        """Decisions waiting for the next flush."""
        return self._queued

    def _run(self) -> None:
        _Chunk().to_batch()  # pyarrow imports pandas on first use: pay that here, not on a flush
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # rows stay queued; the next turn retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("decision log: append failed; will retry")
                self._stop.wait(1.0)

    def flush(self) -> int:
        """Write everything queued now, then have the spool appended (where this log
        collects one); returns how many decisions this log wrote."""
        with self._flush_lock:
            try:
                return self._write_queued()
            finally:  # the other processes' batches, even when ours could not be written
                if self._collect is not None:
                    self._collect()

    def _write_queued(self) -> int:
        with self._queue_lock:
            taken, count = self._chunks, self._queued
            self._chunks, self._queued = deque(), 0
        if not count:
            return 0
        try:
            batches = [chunk.to_batch() for chunk in taken]
            self._writer(pa.Table.from_batches(batches, schema=SCHEMA))
        except SpoolFull as full:  # retrying would only hold them in memory instead
            self.dropped += count
            self.last_error = str(full)
            log.warning("decision log: %d decisions dropped: %s", count, full)
            return 0
        except BaseException:  # back in front of what came since, in order
            with self._queue_lock:
                self._chunks.extendleft(reversed(taken))
                self._queued += count
            raise
        self.written += count
        return count

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Write what is queued, then hold the writer: for erasure, which rewrites the table."""
        self.flush()
        with self._flush_lock:
            yield

    def close(self) -> None:
        """Stop the thread and write what is queued (a clean shutdown loses nothing)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception:
            log.exception("decision log: final flush failed; %d decisions lost", self._queued)


def table_writer(lake_dir: Path, compact_every: int = 100) -> DecisionTableWriter:
    """The writer of the decisions table under ``lake_dir`` (one per table at a time)."""
    return DecisionTableWriter(table_path(lake_dir), SCHEMA, TABLE_CONFIGURATION, compact_every)


def unless_suppressed(
    append: Callable[[LoggedRow], None], suppressed: Callable[[str | None, str | None], bool]
) -> Callable[[LoggedRow], None]:
    """``append`` for every decision except those about erased (suppressed) people."""

    def guarded(row: LoggedRow) -> None:
        key = row.decision.user_id  # "u:<user id>" or "a:<anonymous id>"
        user, anonymous = (key[2:], None) if key.startswith("u:") else (None, key[2:])
        if not suppressed(user, anonymous):
            append(row)

    return guarded


_encode = msgspec.json.Encoder().encode


#: rows per chunk of the queue: one Arrow record batch each
CHUNK_ROWS = 1024
#: a chunk also ends at this many bytes of decision JSON (Arrow's int32 offsets)
CHUNK_BYTES = 64 * 1024 * 1024

if array("i").itemsize != 4:  # the offsets buffer is handed to Arrow as int32
    raise ImportError("the decision log needs a 4-byte C int")

_DECISION = SCHEMA.get_field_index("decision")
assert len(SCHEMA) - 1 == _DECISION, "encode_row puts the decision JSON last"


def encode_row(row: LoggedRow) -> tuple[tuple[Any, ...], bytes]:
    """``row`` as what the request path queues: every column but ``decision`` as plain
    values (``decided_at`` in µs since the epoch), and the decision as JSON bytes."""
    d = row.decision
    top = d.widgets[0] if d.widgets else None
    columns = (
        d.decision_id,
        round(d.at.timestamp() * 1_000_000),
        d.placement,
        d.user_id,
        row.profile_id,
        d.segment,
        row.policy,
        _encode(row.experiments),
        len(d.widgets),
        None if top is None else top.key,
        None if top is None else top.propensity,
    )
    return columns, _encode(d)


class _Chunk:
    """Up to ``CHUNK_ROWS`` queued decisions. The decision JSON (~6 kB each, most of the
    bytes) is appended to one buffer that becomes the Arrow column without a copy or a look
    at each string: built from a list of Python strings instead, that column alone held the
    GIL for 5-25 ms a second at 1,500 decisions/s (the requests' latency tail)."""

    __slots__ = ("ends", "json", "rows", "sealed")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.json = bytearray()
        self.ends = array("i", [0])  # Arrow's int32 offsets (CHUNK_BYTES keeps them far below 2 GB)
        #: taken for a batch: its buffers are Arrow's now (and cannot grow while they are)
        self.sealed = False

    @property
    def full(self) -> bool:
        return len(self.rows) >= CHUNK_ROWS or len(self.json) >= CHUNK_BYTES

    def add(self, columns: tuple[Any, ...], decision: bytes) -> None:
        self.json += decision
        self.ends.append(len(self.json))
        self.rows.append(columns)

    def to_batch(self) -> pa.RecordBatch:
        self.sealed = True
        n = len(self.rows)
        small = list(zip(*self.rows, strict=True)) if n else [()] * _DECISION
        # integers, not datetimes, and from_arrays, not pa.table: both would import pandas
        arrays = [pa.array(col, f.type) for col, f in zip(small, SCHEMA, strict=False)]
        decisions = pa.StringArray.from_buffers(
            n, pa.py_buffer(self.ends), pa.py_buffer(self.json)
        )  # msgspec writes valid UTF-8
        return pa.RecordBatch.from_arrays([*arrays, decisions], schema=SCHEMA)
