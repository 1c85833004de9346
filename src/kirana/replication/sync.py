"""Drive any replication source into its lake tables: snapshot once, then stream.

The order of every step is what makes a restart safe (see ``docs/replication.md``):

1. read whole transactions from the source;
2. merge them into each table, one Delta commit per table, with the batch's
   position as the commit's ``txn`` version;
3. only then confirm to the source (PostgreSQL flush feedback, a file marked
   applied) and save the checkpoint.

A crash after 2 and before 3 makes the source send the batch again; each table
drops the changes its ``txn`` version says it holds, so nothing is applied twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from kirana.redaction import remember, scrub
from kirana.replication.changes import OP, SEQ, ChangeSet
from kirana.replication.lake import ReplicatedTable
from kirana.replication.protocol import ReplicationSource
from kirana.replication.specs import secret_values
from kirana.replication.state import AnyConfig, ReplicationState
from kirana.replication.unchanged import UNAVAILABLE

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one ``sync`` run did."""

    source: str
    snapshot_rows: int = 0
    rows: int = 0
    transactions: int = 0
    batches: int = 0
    position: int | None = None
    lag_seconds: float | None = None
    seconds: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return (self.snapshot_rows + self.rows) / self.seconds if self.seconds else 0.0


def open_source(config: AnyConfig, state: ReplicationState) -> ReplicationSource:
    """The backend module for ``config.kind`` (imported only when used)."""
    if config.kind == "postgres":
        from kirana.replication.postgres import PostgresSource

        return PostgresSource(config, state)
    if config.kind == "mysql":
        from kirana.replication.mysql import MySQLSource

        return MySQLSource(config, state)
    from kirana.replication.files import FileDropSource

    return FileDropSource(config, state)


def unavailable_message(table: str, column: str, config: AnyConfig) -> str:
    """Why a value is a placeholder, and what fixes it (see replication/unchanged.py)."""
    source_table = next(
        (t.name for t in getattr(config, "tables", []) if t.lake_name("public") == table), table
    )
    return (
        f"table {table!r} column {column!r}: an update did not resend this unchanged large"
        f" (TOASTed) value and no earlier copy of the row was known, so the lake holds"
        f" {UNAVAILABLE!r} (null for non-text types); run ALTER TABLE {source_table}"
        " REPLICA IDENTITY FULL so updates carry every value, and"
        f" `kirana sources sync {config.name} --resnapshot` to repair"
    )


class Replicator:
    """Runs one source: snapshot if needed, then apply batches until caught up (or forever)."""

    def __init__(
        self,
        config: AnyConfig,
        lake_dir: Path,
        state: ReplicationState,
        *,
        max_rows: int = 50_000,
        wait_seconds: float = 0.5,
    ) -> None:
        self.config = config
        remember(secret_values(config))  # so log lines are scrubbed of them
        self.lake_dir = Path(lake_dir)
        self.state = state
        self.max_rows = max_rows
        self.wait_seconds = wait_seconds

    def run(
        self,
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
        on_batch: Callable[[SyncReport], None] | None = None,
        lock_wait_seconds: float = 0.0,
    ) -> SyncReport:
        """Replicate; return when caught up (or, with ``follow``, when ``stop`` is set).

        Waits up to ``lock_wait_seconds`` for another replicator of the same source
        (e.g. a round of the ``serve`` job) to finish.
        """
        name = self.config.name
        report = SyncReport(name)
        with self.state.exclusive(name, lock_wait_seconds):
            started = time.monotonic()
            try:  # a source that cannot even connect shows why in its status
                source = open_source(self.config, self.state)
            except Exception as exc:
                self._record_error(exc)
                raise
            try:
                sinks = {
                    spec.name: ReplicatedTable(self.lake_dir, name, spec)
                    for spec in source.tables()
                }
                if source.needs_snapshot():
                    self._snapshot(source, sinks, report)
                    if on_batch:
                        on_batch(report)
                else:
                    self._snapshot_added(source, sinks, report)
                while not (stop is not None and stop.is_set()):
                    if max_seconds is not None and time.monotonic() - started > max_seconds:
                        break
                    changes = source.read(self.max_rows, self.wait_seconds)
                    if changes is None:
                        report.lag_seconds = 0.0
                        self.state.mark_caught_up(name)
                        if not follow:
                            break
                        continue
                    self._apply(source, sinks, changes, report)
                    if on_batch:
                        report.seconds = time.monotonic() - started
                        on_batch(report)
            except Exception as exc:
                self._record_error(exc)
                raise
            finally:
                source.close()
        report.seconds = time.monotonic() - started
        return report

    def _record_error(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"  # drivers echo DSNs: scrub before storing
        self.state.record_error(self.config.name, scrub(message, secret_values(self.config)))

    def _snapshot(
        self, source: ReplicationSource, sinks: dict[str, ReplicatedTable], report: SyncReport
    ) -> None:
        snapshot = source.snapshot()
        try:
            for table, rows in snapshot.tables:
                written = sinks[table].replace(rows, snapshot.position)
                report.snapshot_rows += written
                report.tables[table] = report.tables.get(table, 0) + written
                log.info("replication %s: snapshot of %s: %d rows", source.name, table, written)
        finally:  # a failed copy must not leave its snapshot transaction (and locks) open
            close = getattr(snapshot.tables, "close", None)
            if close is not None:
                close()
        report.position = snapshot.position
        self.state.save_checkpoint(
            source.name,
            snapshot.checkpoint,
            snapshot.position,
            report.snapshot_rows,
            None,
            snapshot_done=True,
        )

    def _snapshot_added(
        self, source: ReplicationSource, sinks: dict[str, ReplicatedTable], report: SyncReport
    ) -> None:
        """Copy tables added to a streaming source (no ``txn`` version yet), only them.

        The checkpoint does not move: the other tables go on streaming from it.
        """
        copy = getattr(source, "snapshot_tables", None)
        added = [name for name, sink in sinks.items() if sink.applied_position() is None]
        if copy is None or not added:
            return
        snapshot = copy(added)
        try:
            for table, rows in snapshot.tables:
                written = sinks[table].replace(rows, snapshot.position)
                report.snapshot_rows += written
                report.tables[table] = report.tables.get(table, 0) + written
                log.info("replication %s: added table %s: %d rows", source.name, table, written)
        finally:
            close = getattr(snapshot.tables, "close", None)
            if close is not None:
                close()

    def _apply(
        self,
        source: ReplicationSource,
        sinks: dict[str, ReplicatedTable],
        changes: ChangeSet,
        report: SyncReport,
    ) -> None:
        touched = set(changes.tables) | set(changes.truncated)
        for table in sorted(touched):
            rows = changes.tables.get(table)
            if rows is None:
                rows = pa.table({OP: pa.array([], pa.string()), SEQ: pa.array([], pa.int64())})
            try:
                done = sinks[table].apply(
                    rows,
                    changes.position,
                    changes.truncated.get(table),
                    existing_rows=changes.existing_rows.get(table),
                )
            except ValueError as exc:
                reject = getattr(source, "reject_applied", None)
                if reject is None:
                    raise
                reject(changes, str(exc))  # a bad file: set aside, go on with the next
                return
            report.tables[table] = report.tables.get(table, 0) + rows.num_rows
            if self.config.kind != "files":  # a database sends every column it has
                for column in done.get("columns_not_sent", []):
                    self.state.record_warning(
                        source.name,
                        f"column_gone:{table}.{column}",
                        f"table {table!r} column {column!r} is no longer at the source (dropped"
                        " or renamed): the lake keeps it, rows written since hold null in it;"
                        f" `kirana sources sync {self.config.name} --resnapshot` realigns",
                    )
            for column, count in done.get("unavailable", {}).items():
                self.state.record_warning(
                    source.name,
                    f"unavailable:{table}.{column}",
                    unavailable_message(table, column, self.config),
                    count,
                )
        source.confirm(changes)
        lag = None if changes.source_time is None else max(0.0, time.time() - changes.source_time)
        self.state.save_checkpoint(
            source.name, changes.checkpoint, changes.position, changes.rows, lag
        )
        report.rows += changes.rows
        report.transactions += changes.transactions
        report.batches += 1
        report.position = changes.position
        report.lag_seconds = lag
