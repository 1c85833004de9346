"""SQLite (WAL) implementation of the operational store: the embedded default.

One connection per thread (:mod:`kirana.store.sqlite_connections`: SQLite connections
must not be shared across threads mid-transaction); WAL mode lets the API read while
consumers write.
Token secrets and write keys are stored only as SHA-256 hashes: a leaked database
does not leak working credentials. The schema is versioned (:mod:`kirana.store.sqlite_schema`).
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kirana.store.protocol import (
    ROLES,
    AlreadyExists,
    AuditEntry,
    NotFound,
    QuarantinedEvent,
    Role,
    Source,
    Token,
    WriteKeyInfo,
)
from kirana.store.sqlite_audit import SQLiteAuditLog
from kirana.store.sqlite_connections import ThreadConnections
from kirana.store.sqlite_schema import KEY_PREFIX_CHARS, hash_secret, migrate, utc_now


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


#: The longest overlap a rotation may give the old key (beyond it, delete the source).
MAX_OVERLAP = timedelta(days=30)


class SQLiteStore:
    """:class:`kirana.store.protocol.OperationalStore` on one SQLite file.

    ``clock`` tells the time write keys expire against (tests move it instead of sleeping).
    """

    def __init__(self, path: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._connections = ThreadConnections(self.path)
        self._conn = self._connections.get
        self._tx = self._connections.transaction
        migrate(self._conn())
        self._audit = SQLiteAuditLog(self._connections, lambda: self.clock())

    # -- sources --------------------------------------------------------------

    def create_source(self, name: str) -> tuple[Source, str]:
        if not name.strip():
            raise ValueError("source name must not be empty")
        source_id = f"src_{uuid.uuid4().hex[:16]}"
        now = self.clock()
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO sources VALUES (?, ?, ?, NULL)",
                    (source_id, name, now.isoformat()),
                )
                key = self._add_key(conn, source_id, now)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a source named {name!r} already exists") from exc
        return self.source_by_name(name), key

    @staticmethod
    def _add_key(conn: sqlite3.Connection, source_id: str, now: datetime) -> str:
        key = f"wk_{secrets.token_urlsafe(24)}"
        conn.execute(
            "INSERT INTO write_keys VALUES (?, ?, ?, ?, NULL)",
            (hash_secret(key), source_id, key[:KEY_PREFIX_CHARS], now.isoformat()),
        )
        return key

    def _source(self, row: tuple, with_keys: bool = True) -> Source:
        keys: tuple[WriteKeyInfo, ...] = ()
        if with_keys:
            now = self.clock().timestamp()
            found = (
                self._conn()
                .execute(
                    "SELECT prefix, created_at, expires_at FROM write_keys "
                    "WHERE source_id = ? AND (expires_at IS NULL OR expires_at > ?) "
                    "ORDER BY created_at",
                    (row[0], now),
                )
                .fetchall()
            )
            keys = tuple(
                WriteKeyInfo(
                    prefix,
                    datetime.fromisoformat(created),
                    datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                )
                for prefix, created, expires in found
            )
        return Source(row[0], row[1], datetime.fromisoformat(row[2]), _time(row[3]), keys)

    def list_sources(self) -> list[Source]:
        rows = self._conn().execute("SELECT * FROM sources ORDER BY created_at").fetchall()
        return [self._source(r) for r in rows]

    def source_by_write_key(self, write_key: str) -> Source | None:
        """The source ``write_key`` belongs to, disabled or not, unless the key has expired
        (the collector refuses a disabled source's events with its own error)."""
        row = (
            self._conn()
            .execute(
                "SELECT s.id, s.name, s.created_at, s.disabled_at, k.expires_at "
                "FROM write_keys k JOIN sources s ON s.id = k.source_id WHERE k.key_sha256 = ?",
                (hash_secret(write_key),),
            )
            .fetchone()
        )
        if row is None or (row[4] is not None and row[4] <= self.clock().timestamp()):
            return None
        return self._source(row, with_keys=False)

    def source_by_name(self, name: str) -> Source:
        row = self._conn().execute("SELECT * FROM sources WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no source named {name!r}; create it with `kirana sources create`")
        return self._source(row)

    def rotate_write_key(self, name: str, overlap: timedelta) -> tuple[Source, str]:
        """A new write key for ``name``; its other keys keep working for ``overlap`` (never
        longer than they would have), so apps can move to the new key without losing events."""
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise ValueError(
                f"overlap_seconds must be between 0 and {int(MAX_OVERLAP.total_seconds())} "
                f"(30 days), not {int(overlap.total_seconds())}"
            )
        now = self.clock()
        until = (now + overlap).timestamp()
        with self._tx() as conn:
            source_id = self.source_by_name(name).id
            conn.execute(
                "UPDATE write_keys SET expires_at = ? "
                "WHERE source_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (until, source_id, until),
            )
            conn.execute(  # keys past their window are dead: do not keep their hashes
                "DELETE FROM write_keys WHERE source_id = ? AND expires_at <= ?",
                (source_id, now.timestamp()),
            )
            key = self._add_key(conn, source_id, now)
        return self.source_by_name(name), key

    def set_source_enabled(self, name: str, enabled: bool) -> Source:
        with self._tx() as conn:
            self.source_by_name(name)
            conn.execute(  # disabling twice keeps the first time
                "UPDATE sources SET disabled_at = "
                "CASE WHEN ? THEN NULL ELSE coalesce(disabled_at, ?) END WHERE name = ?",
                (enabled, self.clock().isoformat(), name),
            )
        return self.source_by_name(name)

    def delete_source(self, name: str) -> Source:
        """Delete the source and its write keys (they stop working at once). What it
        collected stays: events in the log and lake keep its id as ``sourceId``."""
        with self._tx() as conn:
            source = self.source_by_name(name)
            conn.execute("DELETE FROM write_keys WHERE source_id = ?", (source.id,))
            conn.execute("DELETE FROM sources WHERE id = ?", (source.id,))
        return source

    # -- tokens ---------------------------------------------------------------

    def create_token(self, name: str, role: Role) -> tuple[Token, str]:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not name.strip():
            raise ValueError("token name must not be empty")
        secret = f"kt_{secrets.token_urlsafe(32)}"
        token = Token(f"tok_{uuid.uuid4().hex[:16]}", name, role, self.clock())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)",
                (token.id, name, role, hash_secret(secret), token.created_at.isoformat()),
            )
        return token, secret

    _TOKEN_COLUMNS = "id, name, role, created_at, revoked_at"

    @staticmethod
    def _token(row: tuple) -> Token:
        return Token(row[0], row[1], row[2], datetime.fromisoformat(row[3]), _time(row[4]))

    def token_by_secret(self, secret: str) -> Token | None:
        """The token ``secret`` is, unless revoked. Read on every request, never cached,
        so a revocation holds at once in every process (a point read costs ~10 us)."""
        row = (
            self._conn()
            .execute(
                f"SELECT {self._TOKEN_COLUMNS} FROM tokens "
                "WHERE secret_sha256 = ? AND revoked_at IS NULL",
                (hash_secret(secret),),
            )
            .fetchone()
        )
        return self._token(row) if row else None

    def token_by_id(self, token_id: str) -> Token | None:
        """The token with this id, revoked or not (None when there is none)."""
        row = (
            self._conn()
            .execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
            .fetchone()
        )
        return self._token(row) if row else None

    def list_tokens(self) -> list[Token]:
        rows = (
            self._conn()
            .execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens ORDER BY created_at")
            .fetchall()
        )
        return [self._token(r) for r in rows]

    def revoke_token(self, token_id: str) -> Token:
        """Revoke a token for good (revoking it again changes nothing)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self.clock().isoformat(), token_id),
            )
            row = conn.execute(
                f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no token with id {token_id!r}; see `kirana tokens list`")
        return self._token(row)

    # -- audit log --------------------------------------------------------------

    def record_audit(
        self,
        *,
        actor_id: str,
        actor_name: str,
        action: str,
        target: str,
        summary: dict[str, Any],
        status: int,
    ) -> AuditEntry:
        return self._audit.record(
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            target=target,
            summary=summary,
            status=status,
        )

    def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        return self._audit.list(
            before=before, limit=limit, actor=actor, action=action, target=target, since=since
        )

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

    def delete_quarantined_containing(
        self, values: Sequence[str], owned: Callable[[str], bool] | None = None
    ) -> int:
        """Erase quarantined events whose raw text mentions any of ``values`` (and, when
        ``owned`` is given, that it accepts: someone else's event quoting a value stays)."""
        deleted = 0
        with self._tx() as conn:
            for value in values:
                if owned is None:
                    cur = conn.execute("DELETE FROM quarantine WHERE instr(raw, ?) > 0", (value,))
                    deleted += cur.rowcount
                    continue
                rows = conn.execute(
                    "SELECT rowid, raw FROM quarantine WHERE instr(raw, ?) > 0", (value,)
                ).fetchall()
                theirs = [(rowid,) for rowid, raw in rows if owned(raw)]
                conn.executemany("DELETE FROM quarantine WHERE rowid = ?", theirs)
                deleted += len(theirs)
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
