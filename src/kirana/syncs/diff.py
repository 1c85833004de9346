"""Change detection for syncs, inside DuckDB: only rows that differ are sent.

Each row is reduced to ``(key, md5 of its mapped fields as JSON)``. The last
delivered snapshot is a Parquet file of those pairs; joining the two in DuckDB
finds added, changed and removed keys without a Python loop over the rows, so
a million-row source is a hash join, not a Python loop. Only the changed rows'
fields are brought into Python, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from kirana.destinations.config import ConfigError

_decode = msgspec.json.Decoder().decode


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Diff:
    """Counts, removed keys, and the changed rows (streamed from DuckDB in chunks)."""

    rows_read: int
    added: int
    updated: int
    unchanged: int
    #: (key, previous hash) for rows that left the source
    removed: list[tuple[str, str]]
    _conn: duckdb.DuckDBPyConnection
    _source: pa.Table
    _query: str

    def iter_changed(
        self, chunk: int = 10_000, *, id_prefix: str = "", only_new: bool = False
    ) -> Iterator[list[tuple[str, str, str]]]:
        """Added (and, unless ``only_new``, changed) rows as ``(record id, key, fields JSON)``.

        The record id is ``md5(id_prefix + key|previous hash|new hash)``, computed in
        DuckDB, so the rows go to the queue without a Python step per row. Read while
        the connection is open; only ``chunk`` rows are in Python at once.
        """
        if not (self.added or (self.updated and not only_new)):
            return
        where = "WHERE ch.prev_h IS NULL " if only_new else ""
        self._conn.register("sync_source", self._source)
        try:
            cursor = self._conn.execute(self._query.format(where=where), [id_prefix])
            while rows := cursor.fetchmany(chunk):
                yield rows
        finally:
            self._conn.unregister("sync_source")

    @property
    def changed(self) -> list[tuple[str, dict[str, Any]]]:
        """``(key, fields)`` of added and changed rows, decoded (for small diffs and tests)."""
        return [(k, _decode(j)) for part in self.iter_changed() for _, k, j in part]


def diff_rows(
    conn: duckdb.DuckDBPyConnection,
    source: pa.Table,
    key: str,
    mapping: dict[str, str],
    previous: Path | None,
    new_snapshot: Path,
    *,
    keep_removed: bool = False,
) -> Diff:
    """Diff ``source`` against the ``previous`` snapshot and write the next snapshot.

    ``keep_removed`` carries keys that left the source into the new snapshot
    (insert-only syncs must not send them again if they come back).
    """
    columns = source.column_names
    if key not in columns:
        raise ConfigError(f"`key`: column {key!r} is not in the source (it has {columns})")
    fields = mapping or {c: c for c in columns}
    missing = sorted({c for c in fields.values() if c not in columns})
    if missing:
        raise ConfigError(f"`mapping`: source has no column(s) {missing} (it has {columns})")
    conn.register("sync_source", source)
    struct = ", ".join(f"{_q(out)} := {_q(col)}" for out, col in fields.items())
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE sync_current AS SELECT "
        f"CAST({_q(key)} AS VARCHAR) AS k, md5(to_json(struct_pack({struct}))) AS h "
        "FROM sync_source"
    )
    conn.unregister("sync_source")
    bad = conn.execute(
        "SELECT k, count(*) FROM sync_current GROUP BY k HAVING count(*) > 1 OR k IS NULL LIMIT 3"
    ).fetchall()
    if bad:
        shown = ", ".join(f"{k!r} x{n}" for k, n in bad)
        raise ConfigError(f"`key`: column {key!r} must be unique and not null; found {shown}")
    if previous is not None and previous.exists():
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE sync_previous AS SELECT k, h FROM "
            f"read_parquet('{_sql_path(previous)}')"
        )
    else:
        conn.execute("CREATE OR REPLACE TEMP TABLE sync_previous (k VARCHAR, h VARCHAR)")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE sync_changed AS SELECT c.k, p.h AS prev_h, c.h "
        "FROM sync_current c LEFT JOIN sync_previous p USING (k) "
        "WHERE p.h IS DISTINCT FROM c.h"
    )
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM sync_current), count(*) FILTER (WHERE prev_h IS NULL), "
        "count(*) FILTER (WHERE prev_h IS NOT NULL) FROM sync_changed"
    ).fetchone()
    rows_read, added, updated = (int(v or 0) for v in counts)
    removed = conn.execute(
        "SELECT p.k, p.h FROM sync_previous p ANTI JOIN sync_current c USING (k) ORDER BY p.k"
    ).fetchall()
    qualified = ", ".join(f"{_q(out)} := s.{_q(col)}" for out, col in fields.items())
    changed_query = (
        "SELECT md5($1 || ch.k || '|' || coalesce(ch.prev_h, '') || '|' || ch.h), ch.k, "
        f"to_json(struct_pack({qualified}))::VARCHAR "
        f"FROM sync_changed ch JOIN sync_source s ON CAST(s.{_q(key)} AS VARCHAR) = ch.k "
        "{where}ORDER BY ch.k"
    )
    snapshot_sql = "SELECT k, h FROM sync_current"
    if keep_removed:
        snapshot_sql += " UNION ALL SELECT k, h FROM sync_previous ANTI JOIN sync_current USING (k)"
    new_snapshot.parent.mkdir(parents=True, exist_ok=True)
    conn.execute(f"COPY ({snapshot_sql}) TO '{_sql_path(new_snapshot)}' (FORMAT parquet)")
    unchanged = rows_read - added - updated
    return Diff(rows_read, added, updated, unchanged, removed, conn, source, changed_query)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
