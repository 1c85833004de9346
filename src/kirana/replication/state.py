"""Where replication keeps its definitions and progress: ``<state>/replication.sqlite``.

The API, the CLI and the replicating job may be different processes, so they
share nothing but this file (SQLite in WAL mode) and the Delta tables. What a
table holds is decided by the Delta table itself (its ``txn`` version); the
checkpoint here only says where to resume reading, and is written after the
Delta commits, so it can lag the tables but never lead them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kirana.replication.specs import FilesConfig, MySQLConfig, PostgresConfig, parse_source_config
from kirana.store.sqlite_connections import ThreadConnections

AnyConfig = PostgresConfig | MySQLConfig | FilesConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    name TEXT PRIMARY KEY,
    snapshot_done INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT NOT NULL DEFAULT '{}',
    position INTEGER,
    rows_applied INTEGER NOT NULL DEFAULT 0,
    last_sync_at REAL,
    lag_seconds REAL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    rows INTEGER,
    reason TEXT,
    seen_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS files_by_name ON files (source, name, sha256);
CREATE TABLE IF NOT EXISTS warnings (
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_at REAL NOT NULL,
    PRIMARY KEY (source, subject)
);
"""


class SourceNotFound(LookupError):
    pass


class SourceBusy(RuntimeError):
    pass


@dataclass(frozen=True)
class Progress:
    name: str
    snapshot_done: bool
    checkpoint: dict[str, Any]
    position: int | None
    rows_applied: int
    last_sync_at: float | None
    lag_seconds: float | None
    last_error: str | None


@dataclass(frozen=True)
class FileRecord:
    seq: int
    name: str
    sha256: str
    size: int
    state: str
    """``pending`` (being applied), ``applied``, ``duplicate`` or ``rejected``."""
    rows: int | None
    reason: str | None


class ReplicationState:
    """Definitions, checkpoints and processed files, in one SQLite file."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "replication.sqlite"
        self._connections = ThreadConnections(self.path)
        self._conn = self._connections.get
        self._tx = self._connections.transaction
        self._conn().executescript(SCHEMA)

    def close(self) -> None:
        self._connections.close()

    # -- definitions ----------------------------------------------------------

    def add(self, config: AnyConfig) -> None:
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM sources WHERE name = ?", (config.name,)).fetchone():
                raise ValueError(
                    f"a replication source named {config.name!r} exists; "
                    f"remove it first with `kirana sources remove {config.name}`"
                )
            conn.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?)",
                (config.name, config.kind, config.model_dump_json(), time.time()),
            )
            conn.execute("INSERT OR REPLACE INTO progress (name) VALUES (?)", (config.name,))

    def add_tables(self, name: str, tables: list[dict[str, Any]]) -> AnyConfig:
        """Add tables to a database source; the next sync copies only them (PostgreSQL)."""
        with self._tx() as conn:
            row = conn.execute("SELECT config FROM sources WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise SourceNotFound(f"no replication source named {name!r}")
            definition = json.loads(row[0])
            if definition["kind"] == "files":
                raise ValueError(f"source {name!r} is a folder of files: it has one table")
            have = {t["name"] for t in definition["tables"]}
            again = sorted(have & {t["name"] for t in tables})
            if again:
                raise ValueError(f"source {name!r} already replicates {again}")
            definition["tables"] = [*definition["tables"], *tables]
            config = parse_source_config(definition)
            conn.execute(
                "UPDATE sources SET config = ? WHERE name = ?", (config.model_dump_json(), name)
            )
            return config

    def remove(self, name: str) -> None:
        with self._tx() as conn:
            if not conn.execute("DELETE FROM sources WHERE name = ?", (name,)).rowcount:
                raise SourceNotFound(f"no replication source named {name!r}")
            conn.execute("DELETE FROM progress WHERE name = ?", (name,))
            conn.execute("DELETE FROM files WHERE source = ?", (name,))
            conn.execute("DELETE FROM warnings WHERE source = ?", (name,))

    def get(self, name: str) -> AnyConfig:
        row = self._conn().execute("SELECT config FROM sources WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise SourceNotFound(f"no replication source named {name!r}; see `kirana sources list`")
        return parse_source_config(json.loads(row[0]))

    def list(self) -> list[AnyConfig]:
        rows = self._conn().execute("SELECT config FROM sources ORDER BY name").fetchall()
        return [parse_source_config(json.loads(r[0])) for r in rows]

    # -- progress -------------------------------------------------------------

    def progress(self, name: str) -> Progress:
        row = (
            self._conn()
            .execute(
                "SELECT name, snapshot_done, checkpoint, position, rows_applied, last_sync_at,"
                " lag_seconds, last_error FROM progress WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        if row is None:
            return Progress(name, False, {}, None, 0, None, None, None)
        return Progress(row[0], bool(row[1]), json.loads(row[2]), *row[3:])

    def save_checkpoint(
        self,
        name: str,
        checkpoint: dict[str, Any],
        position: int | None,
        rows: int,
        lag_seconds: float | None,
        *,
        snapshot_done: bool | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE progress SET checkpoint = ?, position = ?, rows_applied = rows_applied + ?,"
                " last_sync_at = ?, lag_seconds = coalesce(?, lag_seconds), last_error = NULL,"
                " snapshot_done = coalesce(?, snapshot_done) WHERE name = ?",
                (
                    json.dumps(checkpoint),
                    position,
                    rows,
                    time.time(),
                    lag_seconds,
                    None if snapshot_done is None else int(snapshot_done),
                    name,
                ),
            )

    def reset_snapshot(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE progress SET snapshot_done = 0, checkpoint = '{}', position = NULL"
                " WHERE name = ?",
                (name,),
            )
            conn.execute("DELETE FROM warnings WHERE source = ?", (name,))  # a fresh copy

    def mark_caught_up(self, name: str) -> None:
        """The replicator has read everything the source had: lag is zero now."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE progress SET lag_seconds = 0, last_sync_at = ?, last_error = NULL"
                " WHERE name = ?",
                (time.time(), name),
            )

    def record_error(self, name: str, error: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE progress SET last_error = ? WHERE name = ?", (error, name))

    def record_warning(self, name: str, subject: str, message: str, count: int = 1) -> None:
        """Something kept but not faithfully (e.g. an unavailable value): shown by status."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO warnings VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, subject)"
                " DO UPDATE SET message = excluded.message, count = count + excluded.count,"
                " last_at = excluded.last_at",
                (name, subject, message, count, time.time()),
            )

    def warnings(self, name: str) -> list[dict[str, Any]]:
        rows = (
            self._conn()
            .execute(
                "SELECT subject, message, count, last_at FROM warnings WHERE source = ?"
                " ORDER BY last_at DESC",
                (name,),
            )
            .fetchall()
        )
        return [dict(zip(("subject", "message", "count", "last_at"), r, strict=True)) for r in rows]

    # -- processed files ------------------------------------------------------

    def files(self, source: str, limit: int = 1000) -> list[FileRecord]:
        rows = (
            self._conn()
            .execute(
                "SELECT seq, name, sha256, size, state, rows, reason FROM files WHERE source = ?"
                " ORDER BY seq DESC LIMIT ?",
                (source, limit),
            )
            .fetchall()
        )
        return [FileRecord(*r) for r in rows]

    def known_file(self, source: str, name: str, sha256: str) -> FileRecord | None:
        """The record of this content under this name, or of this content applied before."""
        row = (
            self._conn()
            .execute(
                "SELECT seq, name, sha256, size, state, rows, reason FROM files"
                " WHERE source = ? AND sha256 = ? AND (name = ? OR state = 'applied')"
                " ORDER BY name = ? DESC, seq DESC LIMIT 1",
                (source, sha256, name, name),
            )
            .fetchone()
        )
        return FileRecord(*row) if row else None

    def file_unchanged_since_seen(self, source: str, name: str, size: int, mtime: float) -> bool:
        """Whether this name was recorded at this size after its last change (no need to hash)."""
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM files WHERE source = ? AND name = ? AND size = ? AND seen_at > ?"
                " AND state != 'pending' LIMIT 1",
                (source, name, size, mtime),
            )
            .fetchone()
        )
        return row is not None

    def pending_file(self, source: str) -> FileRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT seq, name, sha256, size, state, rows, reason FROM files"
                " WHERE source = ? AND state = 'pending' ORDER BY seq LIMIT 1",
                (source,),
            )
            .fetchone()
        )
        return FileRecord(*row) if row else None

    def begin_file(self, source: str, name: str, sha256: str, size: int) -> int:
        """Give a file its arrival number (its position) before it is applied."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO files (source, name, sha256, size, state, seen_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?)",
                (source, name, sha256, size, time.time()),
            )
            return int(cur.lastrowid or 0)

    def finish_file(self, seq: int, state: str, rows: int | None, reason: str | None) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE files SET state = ?, rows = ?, reason = ?, done_at = ? WHERE seq = ?",
                (state, rows, reason, time.time(), seq),
            )

    # -- one replicator per source at a time --------------------------------------

    @contextmanager
    def exclusive(self, name: str, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold the source's lock file, waiting up to ``wait_seconds`` for it.

        Raises SourceBusy when another process (or thread) keeps syncing the source.
        """
        lock_dir = self.dir / "replication-locks"
        lock_dir.mkdir(exist_ok=True)
        fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() >= deadline:
                        raise SourceBusy(
                            f"source {name!r} is being replicated by another process (`kirana"
                            " serve` or `kirana sources sync --follow`); wait or stop that one"
                        ) from exc
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)
