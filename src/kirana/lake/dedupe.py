"""The loader's memory of which messageIds are already in the lake.

A client that retries (its ack got lost) sends the same messageId again, and a
loader that crashed re-reads its last batch; both must not duplicate rows.
Looking every batch up in the Delta table would scan the whole table, so the
loader keeps its own index: a SQLite table of messageIds with the day they
arrived. Entries older than the retention window are pruned (Segment dedupes
over a similar window); the window is configurable.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

from kirana.store.sqlite_connections import connect

_LOOKUP_CHUNK = 500


class SeenIndex:
    """Persistent set of messageIds, plus the loader's committed log position."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(path)
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS seen (
                message_id TEXT PRIMARY KEY,
                day INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS seen_day ON seen (day);
            CREATE TABLE IF NOT EXISTS position (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                offset INTEGER NOT NULL
            );
            """
        )

    def position(self) -> int | None:
        row = self._conn.execute("SELECT offset FROM position WHERE id = 1").fetchone()
        return row[0] if row else None

    def already_seen(self, message_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(message_ids), _LOOKUP_CHUNK):
            chunk = message_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT message_id FROM seen WHERE message_id IN ({marks})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    def commit(self, message_ids: Iterable[str], day: date, offset: int) -> None:
        """Remember ids and advance the position, atomically."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO seen VALUES (?, ?)",
                ((m, day.toordinal()) for m in message_ids),
            )
            conn.execute(
                "INSERT INTO position VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET offset = ?",
                (offset, offset),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def prune(self, today: date, keep_days: int) -> int:
        cutoff = (today - timedelta(days=keep_days)).toordinal()
        cur = self._conn.execute("DELETE FROM seen WHERE day < ?", (cutoff,))
        return cur.rowcount

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM seen").fetchone()[0]

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
