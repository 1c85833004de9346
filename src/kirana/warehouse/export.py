"""Export lake tables into a PostgreSQL schema, incrementally by Delta version.

For each table the warehouse remembers, in ``<schema>._kirana_exports``, the
Delta version it holds, and it is updated **in the same PostgreSQL transaction**
as the rows: an export that dies half-way leaves the old version and the old
rows, and the next run starts from there (nothing is applied twice).

What changed since that version comes from

* the **change data feed** when the table has one (replicated tables do):
  inserts and update post-images are upserted by key, deletes are deleted;
* otherwise a **version diff** read from the Delta log: files added by data
  commits are upserted (by key) or appended (no key). Files removed by data
  commits (an erasure, an overwrite) mean rows left the table; without a feed
  the export then reloads the table in full. Compaction (data unchanged) is
  ignored. So does a history with commits missing (an erasure folds the log of
  tables whose old commits name people; log retention drops old commits).

Columns that appear in the lake are added to the warehouse table first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from kirana.lake.catalog import lake_tables
from kirana.replication.lake import arrow_schema, changes_since, table_key, without_views
from kirana.warehouse import ddl

STATE_TABLE = "_kirana_exports"
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


class ExportError(RuntimeError):
    pass


def export_tables(
    lake_dir: Path,
    dsn: str,
    schema: str,
    names: list[str],
    *,
    keys: dict[str, list[str]] | None = None,
    full: bool = False,
    on_table: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Export ``names`` (SQL names of lake tables); returns what each export did."""
    import psycopg

    tables = lake_tables(lake_dir)
    missing = [n for n in names if n not in tables]
    if missing:
        raise ExportError(f"no lake table(s) {missing}; see `kirana sql 'SHOW TABLES'`")
    try:
        conn = psycopg.connect(dsn)
    except psycopg.Error as exc:
        raise ExportError(f"cannot connect to the warehouse: {exc}") from exc
    reports = {}
    with conn:
        with conn.transaction():
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ddl.ident(schema)}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {ddl.ident(schema)}.{STATE_TABLE} ("
                " table_name text PRIMARY KEY, delta_version bigint NOT NULL,"
                " mode text NOT NULL, rows bigint NOT NULL, exported_at timestamptz NOT NULL)"
            )
        for name in names:
            key = (keys or {}).get(name) or table_key(tables[name])
            report = TableExport(conn, schema, name, tables[name], key).run(full=full)
            reports[name] = report
            if on_table:
                on_table(name, report)
    return reports


class TableExport:
    """One lake table into one warehouse table."""

    def __init__(self, conn: Any, schema: str, name: str, path: Path, key: list[str]) -> None:
        self.conn = conn
        self.schema = schema
        self.name = name
        self.path = Path(path)
        self.key = key
        self.target = f"{ddl.ident(schema)}.{ddl.ident(name)}"

    def _exported_version(self) -> int | None:
        row = self.conn.execute(
            f"SELECT delta_version FROM {ddl.ident(self.schema)}.{STATE_TABLE}"
            " WHERE table_name = %s",
            (self.name,),
        ).fetchone()
        return None if row is None else row[0]

    def run(self, *, full: bool = False) -> dict:
        table = DeltaTable(self.path)
        current = table.version()
        last = None if full else self._exported_version()
        if last == current:
            return {"mode": "unchanged", "version": current, "rows": 0}
        with self.conn.transaction():
            self._ensure_table(arrow_schema(table))
            if last is None or last > current:
                return self._full(table, current)
            if table.metadata().configuration.get("delta.enableChangeDataFeed") == "true":
                return self._from_feed(last, current)
            try:
                added, removed = data_files_between(self.path, last, current)
            except ExportError:  # history folded (an erasure, log retention): start over
                return self._full(table, current)
            if removed:
                return self._full(table, current)
            return self._from_files(table, added, current)

    def _ensure_table(self, schema: pa.Schema) -> None:
        self.conn.execute(ddl.create_table(self.schema, self.name, schema, self.key))
        have = {
            r[0]
            for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                (self.schema, self.name),
            ).fetchall()
        }
        for statement in ddl.add_columns(
            self.schema, self.name, [f for f in schema if f.name not in have]
        ):
            self.conn.execute(statement)

    def _record(self, version: int, mode: str, rows: int) -> dict:
        self.conn.execute(
            f"INSERT INTO {ddl.ident(self.schema)}.{STATE_TABLE} VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (table_name) DO UPDATE SET delta_version = EXCLUDED.delta_version,"
            " mode = EXCLUDED.mode, rows = EXCLUDED.rows, exported_at = EXCLUDED.exported_at",
            (self.name, version, mode, rows),
        )
        return {"mode": mode, "version": version, "rows": rows}

    def _full(self, table: DeltaTable, version: int) -> dict:
        self.conn.execute(f"TRUNCATE {self.target}")
        rows = 0
        for batch in table.to_pyarrow_dataset().to_batches():
            rows += self._copy_in(pa.Table.from_batches([batch]), upsert=False)
        return self._record(version, "full", rows)

    def _from_feed(self, last: int, current: int) -> dict:
        feed = changes_since(self.path, last)
        if not self.key:
            kinds = set(feed.column("_change_type").to_pylist())
            if kinds - {"insert"}:
                return self._full(DeltaTable(self.path), current)
        # newest change per key wins: order by commit version, keep the last
        feed = feed.append_column("__order", pa.array(range(feed.num_rows), pa.int64()))
        feed = feed.sort_by([("_commit_version", "ascending"), ("__order", "ascending")])
        if self.key:
            feed = _last_per_key(feed, self.key)
        deletes = feed.filter(pc.equal(feed.column("_change_type"), "delete"))
        upserts = feed.filter(pc.not_equal(feed.column("_change_type"), "delete"))
        drop = [*CDF_COLUMNS, "__order"]
        if deletes.num_rows:
            self._delete(deletes.select(self.key))
        rows = self._copy_in(upserts.drop_columns(drop), upsert=True) if upserts.num_rows else 0
        return self._record(current, "change_feed", rows + deletes.num_rows)

    def _from_files(self, table: DeltaTable, added: dict[str, int], current: int) -> dict:
        rows = 0
        for batch in read_files(self.path, table, added):
            rows += self._copy_in(batch, upsert=bool(self.key))
        return self._record(current, "version_diff", rows)

    def _copy_in(self, rows: pa.Table, *, upsert: bool) -> int:
        """Stage ``rows`` with COPY, then insert (or upsert by key) into the target."""
        if rows.num_rows == 0:
            return 0
        rows = without_views(rows)
        columns = [c for c in rows.column_names if c != "__order"]
        stage = f"_kirana_stage_{self.name}"
        self.conn.execute(f"DROP TABLE IF EXISTS {ddl.ident(stage)}")
        self.conn.execute(
            f"CREATE TEMP TABLE {ddl.ident(stage)} AS SELECT {', '.join(map(ddl.ident, columns))}"
            f" FROM {self.target} WITH NO DATA"
        )
        names = ", ".join(ddl.ident(c) for c in columns)
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {ddl.ident(stage)} ({names}) FROM STDIN") as copy:
                for row in rows.select(columns).to_pylist():
                    copy.write_row([ddl.to_pg(row[c]) for c in columns])
            key = self.key if upsert else []
            cur.execute(ddl.upsert(self.schema, self.name, stage, columns, key))
        return rows.num_rows

    def _delete(self, keys: pa.Table) -> None:
        stage = f"_kirana_gone_{self.name}"
        self.conn.execute(f"DROP TABLE IF EXISTS {ddl.ident(stage)}")
        names = ", ".join(ddl.ident(k) for k in self.key)
        self.conn.execute(
            f"CREATE TEMP TABLE {ddl.ident(stage)} AS SELECT {names} FROM {self.target}"
            " WITH NO DATA"
        )
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {ddl.ident(stage)} ({names}) FROM STDIN") as copy:
                for row in keys.to_pylist():
                    copy.write_row([row[k] for k in self.key])
            cur.execute(ddl.delete_keys(self.schema, self.name, stage, self.key))


def _last_per_key(feed: pa.Table, key: list[str]) -> pa.Table:
    """The last row per key of a table already in change order.

    Within one commit a key is both deleted and inserted only when the commit
    rewrote the table (a snapshot, a truncate): the insert is the final state.
    """
    import duckdb

    conn = duckdb.connect()
    try:
        conn.register("feed", feed)
        keys = ", ".join(ddl.ident(k) for k in key)
        return conn.sql(
            f"SELECT * FROM feed QUALIFY row_number() OVER (PARTITION BY {keys}"
            " ORDER BY _commit_version DESC, _change_type <> 'delete' DESC, __order DESC) = 1"
        ).to_arrow_table()
    finally:
        conn.close()


def data_files_between(path: Path, after: int, upto: int) -> tuple[dict[str, int], list[str]]:
    """Files added and removed by *data* commits in versions (after, upto].

    Returns ({relative path: version added}, [removed paths]). Compaction adds and
    removes with ``dataChange: false`` and is skipped. Raises ExportError when
    a commit file is gone (log retention): export with ``--full``.
    """
    added: dict[str, int] = {}
    removed: list[str] = []
    for version in range(after + 1, upto + 1):
        commit = Path(path) / "_delta_log" / f"{version:020d}.json"
        if not commit.is_file():
            raise ExportError(
                f"{path}: commit {version} is no longer in the Delta log;"
                " run the export with --full"
            )
        for line in commit.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "add" in action and action["add"].get("dataChange", True):
                added[unquote(action["add"]["path"])] = version
            elif "remove" in action and action["remove"].get("dataChange", True):
                gone = unquote(action["remove"]["path"])
                if added.pop(gone, None) is None:
                    removed.append(gone)
    return added, removed


def read_files(path: Path, table: DeltaTable, added: dict[str, int]) -> Iterator[pa.Table]:
    """The rows of the given data files, with partition columns, batch by batch.

    Files that compaction has since replaced are read from the version that added them.
    """
    current = _fragments(path, table)
    present = [current[p] for p in added if p in current]
    if present:
        yield from _scan(table, present)
    for rel in sorted((p for p in added if p not in current), key=added.__getitem__):
        older = DeltaTable(path, version=added[rel])
        fragments = _fragments(path, older)
        if rel not in fragments or not (Path(path) / rel).is_file():
            raise ExportError(f"{path}: data file {rel} was vacuumed; run the export with --full")
        yield from _scan(older, [fragments[rel]])


def _fragments(path: Path, table: DeltaTable) -> dict[str, Any]:
    root = str(Path(path).resolve())
    out = {}
    for fragment in table.to_pyarrow_dataset().get_fragments():
        name = fragment.path
        out[os.path.relpath(name, root) if os.path.isabs(name) else name] = fragment
    return out


def _scan(table: DeltaTable, fragments: list) -> Iterator[pa.Table]:
    dataset = table.to_pyarrow_dataset()
    subset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    for batch in subset.to_batches():
        if batch.num_rows:
            yield pa.Table.from_batches([batch])
