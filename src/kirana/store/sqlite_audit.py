"""The audit log's table in the operational store's SQLite file.

Append-only: entries are numbered (``seq``, never reused) and listed newest first, paged
with ``before`` (the smallest ``seq`` of the previous page), so new entries arriving
between pages neither repeat nor hide any.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kirana.store.protocol import AuditEntry
from kirana.store.sqlite_connections import ThreadConnections


def _stamp(at: datetime) -> str:
    """UTC with microseconds always written, so stamps compare correctly as text."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteAuditLog:
    """Records and lists :class:`AuditEntry` rows (the store delegates here)."""

    def __init__(self, connections: ThreadConnections, clock: Callable[[], datetime]) -> None:
        self._connections = connections
        self._clock = clock

    def record(
        self,
        *,
        actor_id: str,
        actor_name: str,
        action: str,
        target: str,
        summary: dict[str, Any],
        status: int,
    ) -> AuditEntry:
        at = self._clock()
        text = json.dumps(summary, sort_keys=True, default=str)
        with self._connections.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO audit (at, actor_id, actor_name, action, target, summary, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_stamp(at), actor_id, actor_name, action, target, text, status),
            )
            seq = cur.lastrowid
        assert seq is not None
        return AuditEntry(seq, at, actor_id, actor_name, action, target, json.loads(text), status)

    def list(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Newest first. ``actor`` matches the token id or name, ``action`` is a prefix
        (``POST /v1/sources`` also finds ``POST /v1/sources/{name}/rotate-key``)."""
        sql = "SELECT * FROM audit WHERE 1 = 1"
        args: list[object] = []
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        if actor is not None:
            sql += " AND (actor_id = ? OR actor_name = ?)"
            args += [actor, actor]
        if action is not None:
            sql += " AND substr(action, 1, ?) = ?"
            args += [len(action), action]
        if target is not None:
            sql += " AND target = ?"
            args.append(target)
        if since is not None:
            sql += " AND at >= ?"
            args.append(_stamp(since))
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        rows = self._connections.get().execute(sql, args).fetchall()
        return [
            AuditEntry(
                r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]
            )
            for r in rows
        ]
