"""MySQL / MariaDB: a consistent snapshot, then the row-based binlog (``mysql-replication``).

* **No gap, no overlap.** MariaDB reports the binlog position that matches a
  ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` (``binlog_snapshot_file`` /
  ``binlog_snapshot_position``); on MySQL the position is read under a brief
  ``FLUSH TABLES WITH READ LOCK``. The tables are copied inside that
  transaction and the binlog is read from that position.
* **Resume.** A position is the binlog file number and byte offset after a
  transaction's commit (``Xid``) event, as one integer (``file << 32 | offset``),
  so positions order changes across files. The checkpoint is saved after the
  Delta commits; each table skips what its ``txn`` version says it holds.
* The server needs ``log_bin``, ``binlog_format=ROW``, ``binlog_row_image=FULL``
  and, for column names that survive ``ALTER TABLE``, ``binlog_row_metadata=FULL``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from kirana.replication.changes import DELETE, SEQ, UPSERT, ChangeSet, TableBuffer, TableSpec
from kirana.replication.mysqltypes import MySQLColumn, empty_set, lake_value, zero_date
from kirana.replication.protocol import Snapshot
from kirana.replication.specs import MySQLConfig
from kirana.replication.state import ReplicationState

log = logging.getLogger(__name__)

SNAPSHOT_BATCH_ROWS = 20_000
HEARTBEAT_SECONDS = 0.1
BATCH_SECONDS = 1.0
"""A busy binlog (never quiet for a heartbeat) is still applied at least this often."""
_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?`?(?:(\w+)`?\.`?)?(\w+)`?", re.IGNORECASE)


def encode_position(log_file: str, offset: int) -> int:
    """One ordered integer for a binlog file (``binlog.000012``) and an offset in it."""
    return (int(log_file.rsplit(".", 1)[1]) << 32) | offset


class MySQLSource:
    """One database, several tables, one binlog reader."""

    def __init__(self, config: MySQLConfig, state: ReplicationState) -> None:
        self.name = config.name
        self.config = config
        self.state = state
        self.database = config.database()
        self._conn = self._connect()
        self._types: dict[str, dict[str, MySQLColumn]] = {}
        self._specs = self._describe_tables()
        checkpoint = state.progress(self.name).checkpoint
        self._file: str | None = checkpoint.get("file")
        self._offset: int | None = checkpoint.get("offset")
        self._reader = None
        self._reader_file: str | None = None

    def _connect(self):
        import pymysql

        return pymysql.connect(
            **self.config.connection(),
            database=self.database,
            autocommit=True,
            init_command="SET time_zone = '+00:00'",
        )

    def _describe_tables(self) -> dict[str, TableSpec]:
        specs = {}
        for table in self.config.tables:
            name = table.name.rpartition(".")[2]
            key = table.key or self._primary_key(name)
            if not key:
                raise ValueError(f"table {self.database}.{name} has no primary key: give `key`")
            self._types[name] = self._column_types(name)
            if not self._types[name]:
                raise ValueError(f"source {self.name!r}: no table {self.database}.{name}")
            specs[name] = TableSpec(name, tuple(key), table.precombine, f"{self.database}.{name}")
        return specs

    def _primary_key(self, table: str) -> list[str]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT column_name FROM information_schema.key_column_usage WHERE"
                " table_schema = %s AND table_name = %s AND constraint_name = 'PRIMARY'"
                " ORDER BY ordinal_position",
                (self.database, table),
            )
            return [r[0] for r in cur.fetchall()]

    def _column_types(self, table: str) -> dict[str, MySQLColumn]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, data_type, column_type, numeric_precision, numeric_scale,"
                " datetime_precision FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (self.database, table),
            )
            return {
                r[0]: MySQLColumn(r[0], r[1].lower(), r[2].lower(), r[3], r[4], r[5])
                for r in cur.fetchall()
            }

    # -- ReplicationSource ---------------------------------------------------------

    def tables(self) -> list[TableSpec]:
        return list(self._specs.values())

    def needs_snapshot(self) -> bool:
        if not self.state.progress(self.name).snapshot_done or self._file is None:
            return True
        with self._conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            files = {r[0] for r in cur.fetchall()}
        if self._file not in files:
            log.warning(
                "replication %s: binlog %s is gone; snapshotting again", self.name, self._file
            )
            return True
        return False

    def snapshot(self) -> Snapshot:
        self.state.reset_snapshot(self.name)
        conn = self._connect()
        cur = conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%%'")
        status = dict(cur.fetchall())
        if status.get("binlog_snapshot_file"):  # MariaDB: the snapshot's own position
            log_file, offset = (
                status["binlog_snapshot_file"],
                int(status["binlog_snapshot_position"]),
            )
        else:  # MySQL: hold writes for the moment it takes to read the position
            cur.execute("ROLLBACK")
            cur.execute("FLUSH TABLES WITH READ LOCK")
            try:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                cur.execute("SHOW MASTER STATUS")
                log_file, offset = cur.fetchone()[:2]
            finally:
                cur.execute("UNLOCK TABLES")
        self._file, self._offset = log_file, int(offset)
        position = encode_position(log_file, int(offset))
        return Snapshot(
            position=position,
            checkpoint={"file": log_file, "offset": int(offset)},
            tables=self._copy_tables(conn, position),
        )

    def _copy_tables(self, conn, position: int) -> Iterator[tuple[str, pa.RecordBatchReader]]:
        import pymysql.cursors

        try:
            for name, spec in self._specs.items():
                yield name, self._copy_one(conn.cursor(pymysql.cursors.SSCursor), spec, position)
            conn.rollback()
        finally:
            conn.close()

    def _copy_one(self, cur, spec: TableSpec, position: int) -> pa.RecordBatchReader:
        columns = self._types[spec.name]
        names = list(columns)
        schema = pa.schema(
            [pa.field(n, c.lake_type) for n, c in columns.items()] + [pa.field(SEQ, pa.int64())]
        )
        cur.execute(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM `{spec.name}`")

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while rows := cur.fetchmany(SNAPSHOT_BATCH_ROWS):
                    arrays = [
                        pa.array(
                            [lake_value(r[i], columns[n], f"{spec.name}.{n}") for r in rows],
                            columns[n].lake_type,
                        )
                        for i, n in enumerate(names)
                    ]
                    arrays.append(pa.array([position] * len(rows), pa.int64()))
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema)
            finally:
                cur.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _stream(self):
        """One binlog connection kept across reads, blocking, with 0.1 s server heartbeats.

        A heartbeat arrives whenever the binlog has been quiet for 0.1 s: that is
        when a read returns what it has, without polling or reconnecting.
        """
        if self._reader is None:
            from pymysqlreplication import BinLogStreamReader
            from pymysqlreplication.event import (
                HeartbeatLogEvent,
                QueryEvent,
                RotateEvent,
                XidEvent,
            )
            from pymysqlreplication.row_event import (
                DeleteRowsEvent,
                UpdateRowsEvent,
                WriteRowsEvent,
            )

            self._reader = BinLogStreamReader(
                # a silent server (no heartbeat for a minute) is an error, not a hang
                connection_settings={**self.config.connection(), "read_timeout": 60},
                server_id=self.config.replica_id(),
                resume_stream=True,
                log_file=self._file,
                log_pos=self._offset,
                blocking=True,
                slave_heartbeat=HEARTBEAT_SECONDS,
                only_events=[
                    WriteRowsEvent,
                    UpdateRowsEvent,
                    DeleteRowsEvent,
                    XidEvent,
                    QueryEvent,
                    RotateEvent,
                    HeartbeatLogEvent,
                ],
                enable_logging=False,
            )
            self._reader_file = self._file
        return self._reader

    def read(self, max_rows: int, wait_seconds: float) -> ChangeSet | None:
        try:
            return self._read(max_rows, wait_seconds)
        except BaseException:
            self._drop_stream()  # the next read starts again from the confirmed position
            raise

    def _read(self, max_rows: int, wait_seconds: float) -> ChangeSet | None:
        from pymysqlreplication.event import HeartbeatLogEvent, QueryEvent, RotateEvent, XidEvent

        stream = self._stream()
        buffers: dict[str, TableBuffer] = {}
        truncated: dict[str, int] = {}
        pending: list[tuple[str, str, dict]] = []
        end: tuple[str, int] | None = None
        rows = transactions = 0
        source_time = None
        started = time.monotonic()
        while True:
            event = stream.fetchone()
            if event is None or isinstance(event, HeartbeatLogEvent):
                quiet = True
            elif isinstance(event, RotateEvent):
                self._reader_file = event.next_binlog
                continue
            elif isinstance(event, XidEvent) or (
                isinstance(event, QueryEvent) and event.query.strip().upper() == "COMMIT"
            ):
                end = (self._reader_file, event.packet.log_pos)
                seq = encode_position(*end)
                for table, op, row in pending:
                    buffers.setdefault(table, TableBuffer()).add(op, row, seq)
                rows += len(pending)
                transactions += 1 if pending else 0
                source_time = event.timestamp or source_time
                pending = []
                quiet = False
            elif isinstance(event, QueryEvent):
                if self._query(event, buffers, truncated):
                    end = (self._reader_file, event.packet.log_pos)
                    transactions += 1
                continue
            else:
                self._rows(event, pending)
                continue
            if pending:
                continue  # never stop inside a transaction
            elapsed = time.monotonic() - started
            if rows >= max_rows or (end is not None and (quiet or elapsed >= BATCH_SECONDS)):
                break
            if end is None and quiet and elapsed >= wait_seconds:
                return None
        return ChangeSet(
            position=encode_position(*end),
            tables={
                t: b.to_arrow(convert=self._converter(t)) for t, b in buffers.items() if len(b)
            },
            truncated=truncated,
            checkpoint={"file": end[0], "offset": end[1]},
            source_time=float(source_time) if source_time else None,
            transactions=transactions,
        )

    def _query(self, event, buffers: dict[str, TableBuffer], truncated: dict[str, int]) -> bool:
        """A statement in the binlog: only ``TRUNCATE`` of one of our tables matters."""
        match = _TRUNCATE.match(event.query)
        if not match:
            return False
        schema = match.group(1) or _text(event.schema)
        if schema != self.database or match.group(2) not in self._specs:
            return False
        seq = encode_position(self._reader_file, event.packet.log_pos)
        buffers.setdefault(match.group(2), TableBuffer()).truncate(seq)
        truncated[match.group(2)] = seq
        return True

    def _rows(self, event, pending: list[tuple[str, str, dict]]) -> None:
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

        if event.schema != self.database or event.table not in self._specs:
            return
        table = event.table
        key = self._specs[table].key
        for row in event.rows:
            if isinstance(event, UpdateRowsEvent):
                old = self._plain(table, row["before_values"], row.get("before_none_sources"))
                new = self._plain(table, row["after_values"], row.get("after_none_sources"))
                if any(old.get(k) != new.get(k) for k in key):
                    pending.append((table, DELETE, old))
                pending.append((table, UPSERT, new))
            elif isinstance(event, DeleteRowsEvent):
                pending.append((table, DELETE, self._plain(table, row["values"])))
            else:
                values = self._plain(table, row["values"], row.get("none_sources"))
                pending.append((table, UPSERT, values))

    def _drop_stream(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def _plain(
        self, table: str, row: dict[str, Any], none_sources: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A binlog row as the lake holds it (the same values the snapshot gives)."""
        columns = self._types[table]
        if any(name not in columns for name in row):  # ALTER TABLE … ADD COLUMN
            columns.update(self._column_types(table))
        why = none_sources or {}
        out = {}
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                out[name] = value
            elif value is None and empty_set(column, why.get(name)):
                out[name] = ""
            else:
                out[name] = lake_value(
                    value, column, f"{table}.{name}", zero_date=zero_date(why.get(name))
                )
        return out

    def _converter(self, table: str):
        columns = self._types[table]

        def convert(name: str, values: list) -> pa.Array:
            column = columns.get(name)
            return pa.array(values, None if column is None else column.lake_type)

        return convert

    def confirm(self, changes: ChangeSet) -> None:
        self._file = changes.checkpoint["file"]
        self._offset = changes.checkpoint["offset"]

    def close(self) -> None:
        self._drop_stream()
        self._conn.close()


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
