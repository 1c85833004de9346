"""PostgreSQL: a consistent snapshot, then logical replication with ``pgoutput``.

* **No gap, no overlap.** The slot is created with ``EXPORT_SNAPSHOT``: the
  snapshot is copied inside a transaction that uses exactly that snapshot, and
  the stream starts at the slot's consistent point, so every transaction is
  either in the copy or in the stream, never both, never neither. The copied
  rows carry the consistent point as their position.
* **Resume.** The slot remembers the last position Kirana confirmed (flush
  feedback), and Kirana confirms a transaction only after every table holding
  its changes has committed to Delta. After a crash the server resends from
  there; each table skips what its Delta ``txn`` version says it already holds.
* **Deletes** carry the replica identity (the primary key by default, the whole
  row with ``REPLICA IDENTITY FULL``); the record key must be part of it.
* **Schema changes.** A Relation message announces a table's columns before its
  next change; a new column simply appears in the batch and the merge adds it.
"""

from __future__ import annotations

import logging
import select
import tempfile
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pcsv

from kirana.replication import pgoutput
from kirana.replication.changes import (
    DELETE,
    MOVED,
    SEQ,
    UNCHANGED_COLUMNS,
    UPSERT,
    ChangeSet,
    TableBuffer,
    TableSpec,
    quote,
)
from kirana.replication.pgtypes import SESSION_OPTIONS, arrow_type, from_text
from kirana.replication.protocol import Snapshot
from kirana.replication.specs import PostgresConfig
from kirana.replication.state import ReplicationState

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.1
SNAPSHOT_BATCH_ROWS = 100_000


class MissingTable(ValueError):
    """A configured table does not exist (yet) in the database."""


def describe_tables(
    conn, config: PostgresConfig
) -> tuple[dict[str, TableSpec], dict[tuple[str, str], str]]:
    """Each table's spec (by lake name), and lake names by (schema, table).

    Refuses a missing table, a table without a key, and a key that deletes would not
    carry (its replica identity), with the ``ALTER TABLE`` that fixes it.
    """
    specs: dict[str, TableSpec] = {}
    by_source: dict[tuple[str, str], str] = {}
    with conn.cursor() as cur:
        for table in config.tables:
            schema, _, name = table.name.rpartition(".")
            schema = schema or "public"
            cur.execute(
                "SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
                " AND c.relkind IN ('r', 'p')",
                (schema, name),
            )
            found = cur.fetchone()
            if found is None:
                raise MissingTable(
                    f"source {config.name!r}: no table {schema}.{name} in the database"
                )
            oid, identity = found
            cur.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = %s AND i.indisprimary"
                " ORDER BY array_position(i.indkey, a.attnum)",
                (oid,),
            )
            primary = [r[0] for r in cur.fetchall()]
            key = table.key or primary
            if not key:
                raise ValueError(
                    f"table {schema}.{name} has no primary key: give `key` columns and run"
                    f" ALTER TABLE {schema}.{name} REPLICA IDENTITY FULL so deletes carry them"
                )
            if identity == "n" or (identity == "d" and not set(key) <= set(primary)):
                raise ValueError(
                    f"table {schema}.{name}: deletes would not carry the key {key}; run"
                    f" ALTER TABLE {schema}.{name} REPLICA IDENTITY FULL (or key on the"
                    " primary key)"
                )
            lake = table.lake_name("public")
            specs[lake] = TableSpec(lake, tuple(key), table.precombine, f"{schema}.{name}")
            by_source[(schema, name)] = lake
    return specs, by_source


class PostgresSource:
    """One database, several tables, one slot and one publication."""

    def __init__(self, config: PostgresConfig, state: ReplicationState) -> None:
        import psycopg2

        self.name = config.name
        self.config = config
        self.state = state
        self.slot = config.slot_name()
        self.publication = config.publication_name()
        self._conn = psycopg2.connect(config.dsn, options=SESSION_OPTIONS)
        self._conn.autocommit = True
        self._repl = None
        self._cursor = None
        self._streaming = False
        self._relations: dict[int, pgoutput.Relation] = {}
        self._pending_feedback: int | None = None
        self._domains: dict[int, tuple[int, int] | None] = {}
        self._missing: dict[int, dict[str, str]] = {}
        self._specs, self._by_source = describe_tables(self._conn, config)
        self._ensure_publication()

    # -- set-up -------------------------------------------------------------------

    def _ensure_publication(self) -> None:
        wanted = sorted(self._by_source)
        with self._conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,))
            names = ", ".join(f"{quote(s)}.{quote(t)}" for s, t in wanted)
            if cur.fetchone() is None:
                cur.execute(f"CREATE PUBLICATION {quote(self.publication)} FOR TABLE {names}")
                return
            cur.execute(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                (self.publication,),
            )
            have = set(cur.fetchall())
            missing = [f"{quote(s)}.{quote(t)}" for s, t in wanted if (s, t) not in have]
            if missing:
                cur.execute(
                    f"ALTER PUBLICATION {quote(self.publication)} ADD TABLE {', '.join(missing)}"
                )

    def _slot_exists(self) -> bool:
        with self._conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            return cur.fetchone() is not None

    def _replication_cursor(self):
        if self._repl is None:
            import psycopg2
            from psycopg2.extras import LogicalReplicationConnection

            self._repl = psycopg2.connect(
                self.config.dsn,
                connection_factory=LogicalReplicationConnection,
                options=SESSION_OPTIONS,
            )
            self._cursor = self._repl.cursor()
        return self._cursor

    # -- ReplicationSource ---------------------------------------------------------

    def tables(self) -> list[TableSpec]:
        return list(self._specs.values())

    def needs_snapshot(self) -> bool:
        return not (self.state.progress(self.name).snapshot_done and self._slot_exists())

    def snapshot(self) -> Snapshot:
        if self._slot_exists():
            log.warning("replication %s: dropping slot %s to snapshot afresh", self.name, self.slot)
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
        self.state.reset_snapshot(self.name)
        cur = self._replication_cursor()
        cur.execute(f"CREATE_REPLICATION_SLOT {quote(self.slot)} LOGICAL pgoutput EXPORT_SNAPSHOT")
        _, consistent_point, snapshot_name, _ = cur.fetchone()
        position = pgoutput.parse_lsn(consistent_point)
        return Snapshot(
            position=position,
            checkpoint={"slot": self.slot, "lsn": consistent_point},
            tables=self._copy_tables(snapshot_name, position),
        )

    def snapshot_tables(self, tables: list[str]) -> Snapshot:
        """Copy only ``tables`` (added to a streaming source), the others go on streaming.

        The tables are already in the publication (``_ensure_publication``), so the
        main slot sends their changes from there on. A *temporary* slot exported
        the snapshot they are copied on; its consistent point is the copies'
        position (their Delta ``txn`` version), so each new table drops the
        streamed changes the copy already holds and applies the later ones. A crash
        mid-copy leaves the table without a ``txn`` version, and the next run copies
        it again on a fresh snapshot; the temporary slot vanishes with the session.
        """
        import psycopg2
        from psycopg2.extras import LogicalReplicationConnection

        repl = psycopg2.connect(
            self.config.dsn,
            connection_factory=LogicalReplicationConnection,
            options=SESSION_OPTIONS,
        )
        cur = repl.cursor()
        cur.execute(
            f"CREATE_REPLICATION_SLOT {quote(self.slot + '_adding')} TEMPORARY LOGICAL pgoutput"
            " EXPORT_SNAPSHOT"
        )
        _, consistent_point, snapshot_name, _ = cur.fetchone()
        position = pgoutput.parse_lsn(consistent_point)
        return Snapshot(
            position=position,
            checkpoint={},
            tables=self._copy_tables(snapshot_name, position, set(tables), repl),
        )

    def _copy_tables(
        self, snapshot_name: str, position: int, only: set[str] | None = None, exporter=None
    ) -> Iterator[tuple[str, pa.RecordBatchReader]]:
        """Copy each table (or those in ``only``) in one transaction on the exported snapshot;
        ``exporter``, the connection that exported it, is closed at the end."""
        import psycopg2

        conn = psycopg2.connect(self.config.dsn, options=SESSION_OPTIONS)
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
                for (schema, name), lake in self._by_source.items():
                    if only is None or lake in only:
                        yield lake, self._copy_one(cur, schema, name, position)
            conn.rollback()
        finally:
            conn.close()
            if exporter is not None:
                exporter.close()

    def _copy_one(self, cur, schema: str, name: str, position: int) -> pa.RecordBatchReader:
        cur.execute(
            "SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            (f"{quote(schema)}.{quote(name)}",),
        )
        columns = [(n, self._arrow_type(oid, mod)) for n, oid, mod in cur.fetchall()]
        # As they are, not ::text: COPY and pgoutput then both print each value with the
        # type's output function (``::text`` would strip char(n) padding, for one).
        select_list = ", ".join(quote(n) for n, _ in columns)
        spool = tempfile.TemporaryFile(prefix=f"kirana-snapshot-{self.name}-")  # noqa: SIM115
        cur.copy_expert(
            f"COPY (SELECT {select_list} FROM {quote(schema)}.{quote(name)}) TO STDOUT"
            " WITH (FORMAT csv)",
            spool,
        )
        spool.seek(0)
        schema_out = pa.schema([pa.field(n, t) for n, t in columns] + [pa.field(SEQ, pa.int64())])

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                if spool.seek(0, 2) == 0:
                    return
                spool.seek(0)
                reader = pcsv.open_csv(
                    spool,
                    read_options=pcsv.ReadOptions(
                        column_names=[n for n, _ in columns], block_size=16 << 20
                    ),
                    convert_options=pcsv.ConvertOptions(
                        column_types={n: pa.string() for n, _ in columns},
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                        null_values=[""],
                    ),
                )
                for batch in reader:
                    arrays = [
                        from_text(batch.column(i), t, f"{schema}.{name}.{column}")
                        for i, (column, t) in enumerate(columns)
                    ]
                    arrays.append(pa.array([position] * batch.num_rows, pa.int64()))
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema_out)
            finally:
                spool.close()

        return pa.RecordBatchReader.from_batches(schema_out, batches())

    def read(self, max_rows: int, wait_seconds: float) -> ChangeSet | None:
        cur = self._replication_cursor()
        if not self._streaming:
            self._streaming = True
            cur.start_replication(
                slot_name=self.slot,
                decode=False,
                options={"proto_version": "1", "publication_names": self.publication},
            )
        buffers: dict[str, TableBuffer] = {}
        truncated: dict[str, int] = {}
        transaction: list[tuple[str, str, dict]] = []
        in_transaction = False
        commit_time = None
        position = None
        transactions = rows = 0
        started = last_message = time.monotonic()
        while True:
            message = cur.read_message()
            now = time.monotonic()
            if message is None:
                if (
                    position is not None
                    and not in_transaction
                    and (now - last_message >= IDLE_SECONDS or now - started >= wait_seconds)
                ):
                    break
                if position is None and not in_transaction and now - started >= wait_seconds:
                    self._advance_idle(cur)
                    return None
                select.select([self._repl], [], [], 0.05)
                continue
            last_message = now
            decoded = pgoutput.decode(message.payload)
            if isinstance(decoded, pgoutput.Begin):
                in_transaction, transaction = True, []
            elif isinstance(decoded, pgoutput.Relation):
                self._relations[decoded.oid] = decoded
                self._missing[decoded.oid] = self._missing_values(decoded.oid)
            elif isinstance(decoded, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
                transaction.extend(self._rows(decoded))
            elif isinstance(decoded, pgoutput.Truncate):
                for oid in decoded.relation_oids:
                    table = self._lake_name(self._relations[oid])
                    if table is not None:
                        transaction.append((table, "truncate", {}))
            elif isinstance(decoded, pgoutput.Commit):
                in_transaction = False
                position, commit_time = decoded.end_lsn, decoded.commit_time
                for table, op, row in transaction:
                    buffer = buffers.setdefault(table, TableBuffer())
                    if op == "truncate":
                        buffer.truncate(position)
                        truncated[table] = position
                    else:
                        buffer.add(op, row, position)
                        rows += 1
                transactions += 1
                transaction = []
                if rows >= max_rows:
                    break
        missing = self._missing_by_table()
        return ChangeSet(
            position=position,
            tables={
                t: b.to_arrow(convert=self._convert(t), absent=missing.get(t))
                for t, b in buffers.items()
                if len(b)
            },
            existing_rows={
                t: {c: self._convert(t)(c, [v])[0] for c, v in values.items()}
                for t, values in missing.items()
                if t in buffers
            },
            truncated=truncated,
            checkpoint={"slot": self.slot, "lsn": pgoutput.format_lsn(position)},
            source_time=commit_time.timestamp() if commit_time else None,
            transactions=transactions,
        )

    def _missing_values(self, oid: int) -> dict[str, str]:
        """Columns added with a constant DEFAULT, and the value PostgreSQL gives the rows
        that predate them (``attmissingval``: kept in the catalog, the rows not rewritten)."""
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT attname, (attmissingval::text::text[])[1] FROM pg_attribute"
                " WHERE attrelid = %s AND atthasmissing AND NOT attisdropped",
                (oid,),
            )
            return dict(cur.fetchall())

    def _missing_by_table(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for oid, values in self._missing.items():
            table = self._lake_name(self._relations[oid])
            if table is not None and values:
                out[table] = values
        return out

    def _lake_name(self, relation: pgoutput.Relation) -> str | None:
        return self._by_source.get((relation.namespace, relation.name))

    def _rows(self, change) -> list[tuple[str, str, dict]]:
        relation = self._relations[change.relation_oid]
        table = self._lake_name(relation)
        if table is None:
            return []
        names = [c.name for c in relation.columns]
        key = self._specs[table].key
        out = []
        if isinstance(change, pgoutput.Delete):
            return [(table, DELETE, dict(zip(names, change.old, strict=True)))]
        new = dict(zip(names, change.new, strict=True))
        moved = False
        if isinstance(change, pgoutput.Update) and change.old is not None:
            old = dict(zip(names, change.old, strict=True))
            if change.old_kind == "O":  # REPLICA IDENTITY FULL: the old row has every value
                new = {n: old[n] if v is pgoutput.UNCHANGED else v for n, v in new.items()}
            if any(old.get(k) is not None and old.get(k) != new.get(k) for k in key):
                out.append((table, DELETE, old))  # the key itself changed
                moved = True
        unchanged = [n for n, v in new.items() if v is pgoutput.UNCHANGED]
        if unchanged:  # resolved in commit order when applied (replication/unchanged.py)
            new = {n: v for n, v in new.items() if v is not pgoutput.UNCHANGED}
            new[UNCHANGED_COLUMNS] = ",".join(unchanged)
            if moved:
                new[MOVED] = True
        out.append((table, UPSERT, new))
        return out

    def _convert(self, table: str):
        types = {}
        for relation in self._relations.values():
            if self._lake_name(relation) == table:
                types = {
                    c.name: self._arrow_type(c.type_oid, c.type_modifier) for c in relation.columns
                }

        def convert(name: str, values: list) -> pa.Array:
            target = types.get(name)
            if target is None:
                return pa.array(values)
            return from_text(values, target, f"{table}.{name}")

        return convert

    def _arrow_type(self, type_oid: int, type_modifier: int) -> pa.DataType:
        """The lake type of a column; a domain is stored as its base type."""
        if type_oid not in self._domains:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT typbasetype, typtypmod FROM pg_type WHERE oid = %s AND typtype = 'd'",
                    (type_oid,),
                )
                self._domains[type_oid] = cur.fetchone()
        base = self._domains[type_oid]
        if base is None:
            return arrow_type(type_oid, type_modifier)
        return self._arrow_type(base[0], base[1] if type_modifier == -1 else type_modifier)

    def _advance_idle(self, cur) -> None:
        """Nothing of ours is in flight: let the slot move past other tables' WAL."""
        wal_end = getattr(cur, "wal_end", 0) or 0
        if wal_end:
            cur.send_feedback(flush_lsn=wal_end)

    def confirm(self, changes: ChangeSet) -> None:
        if self._cursor is not None:
            self._cursor.send_feedback(flush_lsn=changes.position, reply=True)

    def close(self) -> None:
        for conn in (self._repl, self._conn):
            if conn is not None and not conn.closed:
                conn.close()
