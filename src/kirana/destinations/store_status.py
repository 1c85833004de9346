"""Reading a destination's queue: dead letters, per-record status, health; and replay.

Split from :mod:`kirana.destinations.store` (which owns the schema and the
write paths) so the questions an operator asks live in one short module.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import msgspec

_decode = msgspec.json.Decoder().decode
HEALTH_WINDOW_MINUTES = 15


class QueueInspection:
    """Mixed into :class:`~kirana.destinations.store.DeliveryStore`."""

    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def dead_letters(self, destination: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = (
            self.conn()
            .execute(
                "SELECT id, record_id, user, key, action, collection, data, attempts, last_error, "
                "enqueued_at, finished_at FROM queue WHERE destination = ? AND status = 'dead' "
                "ORDER BY id LIMIT ?",
                (destination, limit),
            )
            .fetchall()
        )
        names = [
            "id",
            "record_id",
            "user",
            "key",
            "action",
            "collection",
            "data",
            "attempts",
            "last_error",
            "enqueued_at",
            "dead_at",
        ]
        out = [dict(zip(names, r, strict=True)) for r in rows]
        for item in out:
            item["data"] = _decode(item["data"])
        return out

    def replay(self, destination: str, record_ids: Sequence[str] | None = None) -> int:
        """Send dead letters again (all, or those with the given record ids)."""
        with self.transaction() as conn:
            sql = (
                "UPDATE queue SET status = 'queued', attempts = 0, next_attempt_at = 0, "
                "finished_at = NULL WHERE destination = ? AND status = 'dead'"
            )
            if record_ids is None:
                return conn.execute(sql, (destination,)).rowcount
            return sum(
                conn.execute(sql + " AND record_id = ?", (destination, rid)).rowcount
                for rid in record_ids
            )

    def record_status(self, destination: str, record_id: str) -> dict[str, Any] | None:
        row = (
            self.conn()
            .execute(
                "SELECT record_id, status, attempts, last_error, next_attempt_at, enqueued_at, "
                "finished_at, origin FROM queue WHERE destination = ? AND record_id = ?",
                (destination, record_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        names = [
            "record_id",
            "status",
            "attempts",
            "last_error",
            "next_attempt_at",
            "enqueued_at",
            "finished_at",
            "origin",
        ]
        return dict(zip(names, row, strict=True))

    def records(self, destination: str, status: str | None = None, limit: int = 100) -> list[dict]:
        sql = (
            "SELECT record_id, user, key, action, status, attempts, last_error, origin "
            "FROM queue WHERE destination = ?"
        )
        params: list[Any] = [destination]
        if status:
            sql += " AND status = ?"
            params.append(status)
        rows = self.conn().execute(sql + " ORDER BY id LIMIT ?", (*params, limit)).fetchall()
        names = ["record_id", "user", "key", "action", "status", "attempts", "last_error", "origin"]
        return [dict(zip(names, r, strict=True)) for r in rows]

    def health(self, destination: str) -> dict[str, Any]:
        conn = self.conn()
        now = time.time()
        counts = dict(
            conn.execute(
                "SELECT status, count(*) FROM queue WHERE destination = ? GROUP BY status",
                (destination,),
            ).fetchall()
        )
        oldest = conn.execute(
            "SELECT min(enqueued_at) FROM queue WHERE destination = ? AND status = 'queued'",
            (destination,),
        ).fetchone()[0]
        delivered, failed = conn.execute(
            "SELECT coalesce(sum(delivered), 0), coalesce(sum(failed), 0) FROM delivery_minutes "
            "WHERE destination = ? AND minute >= ?",
            (destination, int(now // 60) - HEALTH_WINDOW_MINUTES),
        ).fetchone()
        row = conn.execute(
            "SELECT last_error, last_error_at, last_delivered_at, lease_owner, lease_until "
            "FROM destination_health WHERE destination = ?",
            (destination,),
        ).fetchone() or (None, None, None, None, None)
        attempts = delivered + failed
        return {
            "queue_depth": counts.get("queued", 0),
            "dead_letters": counts.get("dead", 0),
            "delivered_kept": counts.get("delivered", 0),
            "lag_seconds": round(now - oldest, 3) if oldest else 0.0,
            "delivered_15m": delivered,
            "failed_attempts_15m": failed,
            "error_rate_15m": round(failed / attempts, 4) if attempts else 0.0,
            "last_error": row[0],
            "last_error_at": row[1],
            "last_delivered_at": row[2],
            "deliverer_active": bool(row[3] and row[4] and row[4] > now),
        }
