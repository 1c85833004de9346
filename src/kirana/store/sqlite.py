"""SQLite (WAL) implementation of the operational store: the embedded default.

One connection per thread (:mod:`kirana.store.sqlite_connections`: SQLite connections
must not be shared across threads mid-transaction); WAL mode lets the API read while
consumers write.
Token secrets are stored only as SHA-256 hashes: a leaked database does not
leak working tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kirana.store.protocol import (
    ROLES,
    AlreadyExists,
    NotFound,
    QuarantinedEvent,
    Role,
    Source,
    Token,
)
from kirana.store.sqlite_connections import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    write_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    log_offset INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    batch_index INTEGER,
    message_id TEXT,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_source ON quarantine (source_id, log_offset);
CREATE TABLE IF NOT EXISTS consumer_positions (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SQLiteStore:
    """:class:`kirana.store.protocol.OperationalStore` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._conn = self._connections.get
        self._tx = self._connections.transaction
        self._conn().executescript(SCHEMA)

    # -- sources --------------------------------------------------------------

    def create_source(self, name: str) -> Source:
        if not name.strip():
            raise ValueError("source name must not be empty")
        source = Source(
            id=f"src_{uuid.uuid4().hex[:16]}",
            name=name,
            write_key=f"wk_{secrets.token_urlsafe(24)}",
            created_at=datetime.now(UTC),
        )
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO sources VALUES (?, ?, ?, ?)",
                    (source.id, source.name, source.write_key, source.created_at.isoformat()),
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a source named {name!r} already exists") from exc
        return source

    @staticmethod
    def _source(row: tuple) -> Source:
        return Source(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    def list_sources(self) -> list[Source]:
        rows = self._conn().execute("SELECT * FROM sources ORDER BY created_at").fetchall()
        return [self._source(r) for r in rows]

    def source_by_write_key(self, write_key: str) -> Source | None:
        row = (
            self._conn()
            .execute("SELECT * FROM sources WHERE write_key = ?", (write_key,))
            .fetchone()
        )
        return self._source(row) if row else None

    def source_by_name(self, name: str) -> Source:
        row = self._conn().execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no source named {name!r}; create it with `kirana sources create`")
        return self._source(row)

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role) -> tuple[Token, str]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        secret = f"kt_{secrets.token_urlsafe(32)}"
        token = Token(f"tok_{uuid.uuid4().hex[:16]}", name, role, datetime.now(UTC))
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                (token.id, name, role, _hash(secret), token.created_at.isoformat()),
            )
        return token, secret

    def token_by_secret(self, secret: str) -> Token | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, name, role, created_at FROM tokens WHERE secret_sha256 = ?",
                (_hash(secret),),
            )
            .fetchone()
        )
        return Token(row[0], row[1], row[2], datetime.fromisoformat(row[3])) if row else None

    def list_tokens(self) -> list[Token]:
        rows = (
            self._conn()
            .execute("SELECT id, name, role, created_at FROM tokens ORDER BY created_at")
            .fetchall()
        )
        return [Token(r[0], r[1], r[2], datetime.fromisoformat(r[3])) for r in rows]

    # -- quarantine -----------------------------------------------------------

    def add_quarantined(self, entries: Sequence[QuarantinedEvent]) -> None:
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.log_offset,
                        e.source_id,
                        e.received_at.isoformat(),
                        e.batch_index,
                        e.message_id,
                        e.code,
                        e.reason,
                        e.raw,
                    )
                    for e in entries
                ],
            )

    def list_quarantined(
        self, *, source_id: str | None = None, after_offset: int = -1, limit: int = 100
    ) -> list[QuarantinedEvent]:
        sql = "SELECT * FROM quarantine WHERE log_offset > ?"
        args: list[object] = [after_offset]
        if source_id is not None:
            sql += " AND source_id = ?"
            args.append(source_id)
        sql += " ORDER BY log_offset LIMIT ?"
        args.append(limit)
        rows = self._conn().execute(sql, args).fetchall()
        return [
            QuarantinedEvent(r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def delete_quarantined_containing(self, values: Sequence[str]) -> int:
        """Erase quarantined events whose raw text mentions any of ``values``."""
        deleted = 0
        with self._tx() as conn:
            for value in values:
                cur = conn.execute("DELETE FROM quarantine WHERE instr(raw, ?) > 0", (value,))
                deleted += cur.rowcount
        conn = self._conn()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        return deleted

    # -- consumer positions and settings -----------------------------------------

    def get_position(self, consumer: str) -> int | None:
        row = (
            self._conn()
            .execute("SELECT position FROM consumer_positions WHERE consumer = ?", (consumer,))
            .fetchone()
        )
        return row[0] if row else None

    def set_position(self, consumer: str, offset: int) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO consumer_positions VALUES (?, ?) "
                "ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
                (consumer, offset),
            )

    def get_setting(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO settings VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        self._connections.close()
