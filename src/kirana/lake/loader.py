"""The lake loader: lands the event log in the Delta table ``events``, exactly once.

Exactly once comes from two mechanisms working together:

* **Loader restarts.** Each Delta commit carries an application transaction
  (``txn``: app id ``kirana.lake.events``, version = the log offset after the
  batch). The version is written atomically with the data, so after a crash
  the table itself says how far the loader got, whatever the loader's own
  state file says.
* **Client retries.** A seen-messageId index (:mod:`kirana.lake.dedupe`)
  filters rows already loaded, and the projection drops repeats within a batch.

Order of a batch: project -> filter seen -> Delta append with txn -> commit
ids and position to the index. If the process dies between the last two
steps, recovery notices that the table's txn version is ahead of the index
and re-reads that stretch of the log to re-learn its messageIds, without
writing anything twice.

Housekeeping when idle: compaction of small files (each ~1 s batch writes a
file per touched date partition), checkpoints, and pruning of the index.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import TableNotFoundError

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.lake import events_table
from kirana.lake.appends import append_with_retries, compact_table
from kirana.lake.dedupe import SeenIndex

log = logging.getLogger(__name__)

APP_ID = "kirana.lake.events"


class LakeLoader:
    """Consumer that appends accepted events to ``<lake>/events``."""

    name = "lake-loader"

    def __init__(
        self,
        event_log: EventLog,
        lake_dir: Path,
        state_dir: Path,
        *,
        max_batch: int = 100_000,
        linger: float = 1.0,
        compact_every: int = 50,
        compact_idle_seconds: float = 30.0,
        dedupe_days: int = 30,
        vacuum_retention_hours: int = 168,
    ) -> None:
        self.max_batch = max_batch
        self.linger = linger
        self._log = event_log
        self.table_path = Path(lake_dir) / events_table.TABLE
        self._index = SeenIndex(Path(state_dir) / "lake-loader.sqlite")
        self._duck = duckdb.connect()
        self._duck.execute("SET TimeZone = 'UTC'")
        self._duck.execute("SET threads = 1")
        self._sql = events_table.projection_sql("batch")
        self._compact_every = compact_every
        self._compact_idle = compact_idle_seconds
        self._dedupe_days = dedupe_days
        self._vacuum_hours = vacuum_retention_hours
        self._commits_since_compact = 0
        self._last_write = time.monotonic()
        self._last_housekeeping = 0.0
        self.rows_written = 0
        self.duplicates_dropped = 0
        self._ensure_table()
        self._position = self._recover()

    # -- recovery -------------------------------------------------------------

    def _table(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.table_path)
        except TableNotFoundError:
            return None

    def _ensure_table(self) -> None:
        """Create the empty table up front, so queries work before the first event."""
        if self._table() is None:
            DeltaTable.create(
                self.table_path,
                schema=events_table.SCHEMA,
                partition_by=events_table.PARTITION_BY,
                name=events_table.TABLE,
                description="Every accepted event, one row per messageId",
                configuration=events_table.TABLE_CONFIGURATION,
            )

    def _recover(self) -> int:
        indexed = self._index.position()
        position = indexed if indexed is not None else self._log.start_offset
        table = self._table()
        committed = table.transaction_version(APP_ID) if table is not None else None
        if committed is not None and committed > position:
            log.warning(
                "lake loader: table is ahead of the index (%d > %d); re-learning messageIds",
                committed,
                position,
            )
            offset = position
            while offset < committed:
                result = self._log.read(offset, self.max_batch)
                records = [r for r in result.records if r.offset < committed]
                projected = self._project(records)
                ids = projected.column("message_id").to_pylist() if projected.num_rows else []
                offset = min(result.next_offset, committed) if records else committed
                self._index.commit(ids, datetime.now(UTC).date(), offset)
            position = committed
        return position

    # -- consuming ------------------------------------------------------------

    def position(self) -> int:
        return self._position

    def _project(self, records: list[LogRecord]) -> pa.Table:
        events = [r for r in records if r.payload[:1] == EVENT]
        batch = pa.table(
            {
                "log_offset": pa.array([r.offset for r in events], pa.int64()),
                "raw": pa.array([r.payload[1:] for r in events], pa.binary()).cast(pa.string()),
            }
        )
        del events
        self._duck.register("batch", batch)
        try:
            return self._duck.sql(self._sql).to_arrow_table().cast(events_table.SCHEMA)
        finally:
            self._duck.unregister("batch")

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        rows = self._project(records)
        ids = rows.column("message_id").to_pylist()
        seen = self._index.already_seen(ids)
        if seen:
            keep = pc.invert(pc.is_in(rows.column("message_id"), pa.array(list(seen))))
            rows = rows.filter(keep)
            self.duplicates_dropped += len(seen)
        if rows.num_rows:
            self._append(rows, next_offset)
        self._index.commit((i for i in ids if i not in seen), datetime.now(UTC).date(), next_offset)
        self._position = next_offset
        self.rows_written += rows.num_rows

    def _append(self, rows: pa.Table, next_offset: int) -> None:
        properties = CommitProperties(app_transactions=[Transaction(APP_ID, next_offset)])
        append_with_retries(
            self.table_path,
            rows,
            partition_by=events_table.PARTITION_BY,
            commit_properties=properties,
        )
        self._commits_since_compact += 1
        self._last_write = time.monotonic()
        if self._commits_since_compact >= self._compact_every:
            self.compact()

    # -- housekeeping ---------------------------------------------------------

    def idle(self) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping < self._compact_idle:
            return
        self._last_housekeeping = now
        if self._commits_since_compact and now - self._last_write >= self._compact_idle:
            self.compact()
        self._index.prune(date.today(), self._dedupe_days)

    def compact(self) -> dict:
        """Merge small files, checkpoint, and vacuum files past the retention window."""
        table = self._table()
        if table is None:
            return {}
        metrics = compact_table(table, self._vacuum_hours)
        self._commits_since_compact = 0
        log.debug("lake loader: compacted events table: %s", metrics)
        return metrics

    def close(self) -> None:
        self._index.close()
        self._duck.close()
