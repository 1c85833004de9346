"""Sync definitions, their last delivered snapshot and run history, in the delivery store.

They share the delivery store's SQLite file so that queuing a run's changes
and moving the sync to its new snapshot commit in one transaction.
"""

from __future__ import annotations

import time
from typing import Any

from kirana.destinations.store import DeliveryStore
from kirana.syncs.model import SyncConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS syncs (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    snapshot TEXT,
    next_run_at REAL,
    running_until REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_runs (
    id INTEGER PRIMARY KEY,
    sync TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    rows_read INTEGER,
    added INTEGER,
    updated INTEGER,
    deleted INTEGER,
    unchanged INTEGER,
    queued INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS sync_runs_by_sync ON sync_runs (sync, id);
"""
RUN_COLUMNS = [
    "id",
    "sync",
    "trigger",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "added",
    "updated",
    "deleted",
    "unchanged",
    "queued",
    "error",
]


class SyncStore:
    def __init__(self, delivery: DeliveryStore) -> None:
        self.delivery = delivery
        delivery.conn().executescript(SCHEMA)

    def save(self, config: SyncConfig) -> None:
        now = time.time()
        first = now + config.schedule_seconds if config.schedule_seconds else None
        with self.delivery.transaction() as conn:
            conn.execute(
                "INSERT INTO syncs (name, config, next_run_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "config = excluded.config, next_run_at = excluded.next_run_at, "
                "updated_at = excluded.updated_at",
                (config.name, config.model_dump_json(), first, now, now),
            )

    def get(self, name: str) -> SyncConfig | None:
        row = (
            self.delivery.conn()
            .execute("SELECT config FROM syncs WHERE name = ?", (name,))
            .fetchone()
        )
        return SyncConfig.model_validate_json(row[0]) if row else None

    def all(self) -> list[SyncConfig]:
        rows = self.delivery.conn().execute("SELECT config FROM syncs ORDER BY name").fetchall()
        return [SyncConfig.model_validate_json(r[0]) for r in rows]

    def delete(self, name: str) -> str | None:
        """Remove a sync; returns its snapshot path (for the caller to delete) or None."""
        with self.delivery.transaction() as conn:
            row = conn.execute("SELECT snapshot FROM syncs WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM syncs WHERE name = ?", (name,))
            return row[0] or ""

    def snapshot(self, name: str) -> str | None:
        row = (
            self.delivery.conn()
            .execute("SELECT snapshot FROM syncs WHERE name = ?", (name,))
            .fetchone()
        )
        return row[0] if row else None

    def claim(self, name: str, hold_seconds: float) -> bool:
        """Mark a run in progress; False when another run holds the sync."""
        now = time.time()
        with self.delivery.transaction() as conn:
            return bool(
                conn.execute(
                    "UPDATE syncs SET running_until = ? WHERE name = ? AND "
                    "(running_until IS NULL OR running_until < ?)",
                    (now + hold_seconds, name, now),
                ).rowcount
            )

    def due(self) -> list[str]:
        """Scheduled syncs whose next run time has come (claimed by moving it on)."""
        now = time.time()
        names = []
        with self.delivery.transaction() as conn:
            for name, config in conn.execute(
                "SELECT name, config FROM syncs WHERE next_run_at IS NOT NULL AND next_run_at <= ?",
                (now,),
            ).fetchall():
                every = SyncConfig.model_validate_json(config).schedule_seconds
                conn.execute("UPDATE syncs SET next_run_at = ? WHERE name = ?", (now + every, name))
                names.append(name)
        return names

    def start_run(self, name: str, trigger: str) -> int:
        with self.delivery.transaction() as conn:
            return int(
                conn.execute(
                    "INSERT INTO sync_runs (sync, trigger, status, started_at) "
                    "VALUES (?, ?, 'running', ?)",
                    (name, trigger, time.time()),
                ).lastrowid
            )

    def finish_run(self, run_id: int, name: str, counts: dict[str, int], snapshot: str) -> None:
        """Record success and move to ``snapshot`` (inside the transaction that queues)."""
        with self.delivery.transaction() as conn:
            conn.execute(
                "UPDATE sync_runs SET status = 'succeeded', finished_at = ?, rows_read = ?, "
                "added = ?, updated = ?, deleted = ?, unchanged = ?, queued = ? WHERE id = ?",
                (
                    time.time(),
                    counts["rows_read"],
                    counts["added"],
                    counts["updated"],
                    counts["deleted"],
                    counts["unchanged"],
                    counts["queued"],
                    run_id,
                ),
            )
            conn.execute(
                "UPDATE syncs SET snapshot = ?, running_until = NULL WHERE name = ?",
                (snapshot, name),
            )

    def fail_run(self, run_id: int, name: str, error: str) -> None:
        with self.delivery.transaction() as conn:
            conn.execute(
                "UPDATE sync_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                (time.time(), error[:4000], run_id),
            )
            conn.execute("UPDATE syncs SET running_until = NULL WHERE name = ?", (name,))

    def runs(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = (
            self.delivery.conn()
            .execute(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM sync_runs WHERE sync = ? "
                "ORDER BY id DESC LIMIT ?",
                (name, limit),
            )
            .fetchall()
        )
        return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in rows]
