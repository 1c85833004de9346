"""The delivery store: destination configs, one persistent queue per destination,
per-record status, dead letters, health counters and leases — one SQLite file (WAL).

Everything a deliverer, the router consumer, a sync run and an API route share
lives here, so they may run in different processes. A record is queued in the
same transaction as whatever produced it (the router's log position, a sync's
snapshot pointer), and ``(destination, record_id)`` is unique, so replaying
the producer queues nothing twice. Delivered records keep their status row for
``keep_delivered`` seconds (the replay-dedupe window), then are pruned.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from kirana.destinations.config import DestinationConfig
from kirana.destinations.ordering import Candidate
from kirana.destinations.records import OutboundRecord
from kirana.destinations.store_status import QueueInspection
from kirana.store.sqlite_connections import ThreadConnections, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS destinations (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    record_id TEXT NOT NULL,
    user TEXT NOT NULL,
    key TEXT NOT NULL,
    action TEXT NOT NULL,
    collection TEXT,
    data BLOB NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    enqueued_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (destination, record_id)
);
CREATE INDEX IF NOT EXISTS queue_pending ON queue (destination, status, id);
CREATE TABLE IF NOT EXISTS delivery_minutes (
    destination TEXT NOT NULL,
    minute INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, minute)
);
CREATE TABLE IF NOT EXISTS destination_health (
    destination TEXT PRIMARY KEY,
    last_error TEXT,
    last_error_at REAL,
    last_delivered_at REAL,
    lease_owner TEXT,
    lease_until REAL
);
CREATE TABLE IF NOT EXISTS positions (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode


def store_path(state_dir: Path) -> Path:
    """Where the delivery store lives under a data dir's state folder."""
    return state_dir / "delivery.sqlite"


_decode = msgspec.json.Decoder().decode


def _open(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA secure_delete=OFF")
    # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt.
    # Every writer commits its producer's position with its effects, so a lost
    # commit is redone from the (fsync'd) event log or the previous snapshot,
    # and a lost "delivered" mark only means one more delivery of that record
    # under the same idempotency key.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class DeliveryStore(QueueInspection):
    """SQLite-backed state for destinations and syncs (one connection per thread)."""

    def __init__(self, path: Path, *, keep_delivered: float = 72 * 3600) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keep_delivered = keep_delivered
        self._connections = ThreadConnections(self.path, _open)
        #: this thread's connection
        self.conn = self._connections.get
        #: one write transaction (nested calls join the outer one)
        self.transaction = self._connections.transaction
        self.conn().executescript(SCHEMA)

    def close(self) -> None:
        self._connections.close()

    # -- destinations -----------------------------------------------------------

    def save_destination(self, config: DestinationConfig) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO destinations VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET config = excluded.config, updated_at = excluded.updated_at",
                (config.name, config.model_dump_json(), now, now),
            )

    def destination(self, name: str) -> DestinationConfig | None:
        row = (
            self.conn()
            .execute("SELECT config FROM destinations WHERE name = ?", (name,))
            .fetchone()
        )
        return DestinationConfig.model_validate_json(row[0]) if row else None

    def destinations(self) -> list[DestinationConfig]:
        rows = self.conn().execute("SELECT config FROM destinations ORDER BY name").fetchall()
        return [DestinationConfig.model_validate_json(r[0]) for r in rows]

    def destinations_since(self) -> list[tuple[DestinationConfig, float]]:
        """Every destination with the time it was created (unix seconds)."""
        rows = (
            self.conn()
            .execute("SELECT config, created_at FROM destinations ORDER BY name")
            .fetchall()
        )
        return [(DestinationConfig.model_validate_json(r[0]), float(r[1])) for r in rows]

    def config_version(self) -> tuple[int, float]:
        """Changes whenever a destination is added, changed or removed."""
        count, latest = (
            self.conn()
            .execute("SELECT count(*), coalesce(max(updated_at), 0) FROM destinations")
            .fetchone()
        )
        return int(count), float(latest)

    def delete_destination(self, name: str) -> bool:
        with self.transaction() as conn:
            gone = conn.execute("DELETE FROM destinations WHERE name = ?", (name,)).rowcount
            conn.execute("DELETE FROM queue WHERE destination = ?", (name,))
            conn.execute("DELETE FROM delivery_minutes WHERE destination = ?", (name,))
            conn.execute("DELETE FROM destination_health WHERE destination = ?", (name,))
        return bool(gone)

    # -- producers ----------------------------------------------------------------

    def get_position(self, consumer: str) -> int | None:
        row = (
            self.conn()
            .execute("SELECT position FROM positions WHERE consumer = ?", (consumer,))
            .fetchone()
        )
        return int(row[0]) if row else None

    def set_position(self, consumer: str, position: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO positions VALUES (?, ?) ON CONFLICT (consumer) "
                "DO UPDATE SET position = excluded.position",
                (consumer, position),
            )

    def enqueue(self, items: Sequence[tuple[str, OutboundRecord]], origin: str) -> int:
        """Queue records (``(destination, record)``); already-known record ids are skipped."""
        if not items:
            return 0
        now = time.time()
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO queue (destination, record_id, user, key, action, collection, "
                "data, origin, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (destination, record_id) DO NOTHING",
                [
                    (
                        dest,
                        r.record_id,
                        r.user,
                        r.key,
                        r.action,
                        r.collection,
                        _encode(r.data),
                        origin,
                        now,
                    )
                    for dest, r in items
                ],
            )
            return conn.total_changes - before

    def enqueue_json(
        self,
        destination: str,
        action: str,
        collection: str | None,
        origin: str,
        rows: Sequence[tuple[str, str, str]],
    ) -> int:
        """Queue entity changes given as ``(record id, key, fields as JSON text)``.

        The bulk path for sync runs: rows come straight from DuckDB, already encoded.
        """
        if not rows:
            return 0
        now = time.time()
        with self.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO queue (destination, record_id, user, key, action, collection, "
                "data, origin, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (destination, record_id) DO NOTHING",
                [
                    (destination, rid, key, key, action, collection, data, origin, now)
                    for rid, key, data in rows
                ],
            )
            return conn.total_changes - before

    # -- deliverers -----------------------------------------------------------------

    def acquire_lease(self, destination: str, owner: str, ttl: float) -> bool:
        """Make ``owner`` the only deliverer of ``destination`` for ``ttl`` seconds."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO destination_health (destination) VALUES (?) "
                "ON CONFLICT (destination) DO NOTHING",
                (destination,),
            )
            changed = conn.execute(
                "UPDATE destination_health SET lease_owner = ?, lease_until = ? "
                "WHERE destination = ? AND (lease_owner IS NULL OR lease_owner = ? "
                "OR lease_until < ?)",
                (owner, now + ttl, destination, owner, now),
            ).rowcount
        return bool(changed)

    def release_lease(self, destination: str, owner: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE destination_health SET lease_owner = NULL WHERE destination = ? "
                "AND lease_owner = ?",
                (destination, owner),
            )

    def candidates(self, destination: str, limit: int) -> list[Candidate]:
        rows = (
            self.conn()
            .execute(
                "SELECT id, user, attempts, next_attempt_at FROM queue "
                "WHERE destination = ? AND status = 'queued' ORDER BY id LIMIT ?",
                (destination, limit),
            )
            .fetchall()
        )
        return list(map(Candidate._make, rows))

    def load(self, ids: Sequence[int]) -> list[tuple[int, OutboundRecord]]:
        rows = self._in(
            "SELECT id, record_id, user, key, action, data, collection, attempts FROM queue "
            "WHERE id IN ({}) ORDER BY id",
            ids,
        )
        return [
            (r[0], OutboundRecord(r[1], r[2], r[3], r[4], _decode(r[5]), r[6], r[7])) for r in rows
        ]

    def _in(self, sql: str, ids: Sequence[int], *params: Any) -> list[tuple]:
        out: list[tuple] = []
        for i in range(0, len(ids), 900):
            chunk = list(ids[i : i + 900])
            marks = ",".join("?" * len(chunk))
            out.extend(self.conn().execute(sql.format(marks), (*params, *chunk)).fetchall())
        return out

    def mark_delivered(self, destination: str, ids: Sequence[int]) -> None:
        now = time.time()
        with self.transaction() as conn:
            for i in range(0, len(ids), 900):
                chunk = list(ids[i : i + 900])
                conn.execute(
                    "UPDATE queue SET status = 'delivered', finished_at = ?, last_error = NULL "
                    f"WHERE id IN ({','.join('?' * len(chunk))})",
                    (now, *chunk),
                )
            self._count(conn, destination, delivered=len(ids), now=now)
            conn.execute(
                "UPDATE destination_health SET last_delivered_at = ? WHERE destination = ?",
                (now, destination),
            )

    def mark_failed(
        self,
        destination: str,
        ids: Sequence[int],
        error: str,
        *,
        retry_at: float | None,
        counts: bool,
        max_attempts: int,
    ) -> int:
        """Record a failed try; dead-letter records out of attempts (or all, if no ``retry_at``).

        Returns how many records went to the dead-letter store.
        """
        now = time.time()
        dead = 0
        with self.transaction() as conn:
            for i in range(0, len(ids), 900):
                chunk = list(ids[i : i + 900])
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    "UPDATE queue SET attempts = attempts + ?, last_error = ?, "
                    f"next_attempt_at = ? WHERE id IN ({marks})",
                    (1 if counts else 0, error, retry_at or now, *chunk),
                )
                dead += conn.execute(
                    "UPDATE queue SET status = 'dead', finished_at = ? "
                    f"WHERE id IN ({marks}) AND (? OR attempts >= ?)",
                    (now, *chunk, retry_at is None, max_attempts),
                ).rowcount
            self._count(conn, destination, failed=len(ids) if counts else 0, now=now)
            conn.execute(
                "INSERT INTO destination_health (destination, last_error, last_error_at) "
                "VALUES (?, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                (destination, error[:2000], now),
            )
        return dead

    def _count(
        self,
        conn: sqlite3.Connection,
        destination: str,
        *,
        now: float,
        delivered: int = 0,
        failed: int = 0,
    ) -> None:
        conn.execute(
            "INSERT INTO delivery_minutes VALUES (?, ?, ?, ?) ON CONFLICT (destination, minute) "
            "DO UPDATE SET delivered = delivered + excluded.delivered, "
            "failed = failed + excluded.failed",
            (destination, int(now // 60), delivered, failed),
        )

    def note_error(self, destination: str, error: str) -> None:
        """Record a problem that is not about a record (a backend that cannot start)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO destination_health (destination, last_error, last_error_at) "
                "VALUES (?, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                (destination, error[:2000], time.time()),
            )

    def prune(self) -> int:
        """Forget delivered records older than the dedupe window, and old counters."""
        now = time.time()
        with self.transaction() as conn:
            gone = conn.execute(
                "DELETE FROM queue WHERE status = 'delivered' AND finished_at < ?",
                (now - self.keep_delivered,),
            ).rowcount
            conn.execute(
                "DELETE FROM delivery_minutes WHERE minute < ?", (int(now // 60) - 24 * 60,)
            )
        return gone

    def erase(self, values: Sequence[str]) -> int:
        """Forget every queued, delivered or dead record of these users or keys (privacy).

        Returns how many records were removed. Records already delivered downstream
        must be erased there too; this only clears what Kirana itself keeps.
        """
        removed = 0
        with self.transaction() as conn:
            for value in values:
                removed += conn.execute(
                    "DELETE FROM queue WHERE user = ? OR key = ?", (value, value)
                ).rowcount
        return removed
