"""The profile store on SQLite (WAL): the embedded default."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kirana.identity.store import SQLProfileStore


class SQLiteProfileStore(SQLProfileStore):
    """One connection, used by the identity consumer and (read-only) the API.

    ``check_same_thread`` is off because the API reads from other threads;
    SQLite serialises access on the connection itself.
    """

    marker = "?"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")  # erased people do not linger in free pages
        # 64 MB of page cache (the default is 2 MB): at millions of identities every lookup
        # walks B-tree pages that would otherwise be read back from the OS on each probe.
        conn.execute("PRAGMA cache_size=-65536")
        self._path = path
        super().__init__(conn)

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def compact_storage(self) -> None:
        """Fold the WAL into the database and rebuild it, dropping old page images."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("VACUUM")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
