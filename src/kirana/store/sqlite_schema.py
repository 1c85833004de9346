"""The operational store's SQLite schema, as numbered migrations.

``PRAGMA user_version`` records how many migrations a file has had; opening a store runs
the missing ones, each in one transaction, so an old data directory upgrades in place and
a crash mid-upgrade leaves the previous version intact. A new file runs them all. Never
edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

#: The first schema (before versioning: its statements are idempotent, so a file created
#: by a version that did not set ``user_version`` passes through it unchanged).
_V1 = """
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

#: Access management: write keys leave the sources table for one of their own, stored as
#: SHA-256 hashes (several per source while a rotation overlaps); sources can be disabled,
#: tokens revoked; the audit log of management changes.
_V2_TABLES = """
CREATE TABLE write_keys (
    key_sha256 TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at REAL
);
CREATE INDEX write_keys_source ON write_keys (source_id);
CREATE TABLE sources_v2 (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);
ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    summary TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX audit_actor ON audit (actor_id, seq);
"""

#: How many characters of a write key lists show (``wk_`` and four random ones).
KEY_PREFIX_CHARS = 7


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret: enough for random keys of 190+ bits (no dictionary to try)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _v1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v2(conn: sqlite3.Connection) -> None:
    for statement in _V2_TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)
    rows = conn.execute("SELECT id, name, write_key, created_at FROM sources").fetchall()
    conn.executemany(
        "INSERT INTO write_keys VALUES (?, ?, ?, ?, NULL)",
        [(hash_secret(key), sid, key[:KEY_PREFIX_CHARS], created) for sid, _, key, created in rows],
    )
    conn.executemany(
        "INSERT INTO sources_v2 VALUES (?, ?, ?, NULL)",
        [(sid, name, created) for sid, name, _, created in rows],
    )
    conn.execute("DROP TABLE sources")  # secure_delete: the plain keys' pages are zeroed
    conn.execute("ALTER TABLE sources_v2 RENAME TO sources")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file up to the latest schema; return the version it had."""
    conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then skip
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        for version in range(found, len(MIGRATIONS)):
            MIGRATIONS[version](conn)
        if found < len(MIGRATIONS):
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def utc_now() -> datetime:
    return datetime.now(UTC)
