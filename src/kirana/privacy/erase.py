"""Erase everything Kirana holds about one person.

Order matters: suppress first (no new data arrives), then rewrite the
person's records in the event log as tombstones, then wait until every
consumer has passed the log's end (so none can re-create what is about to be
erased), then the profile store, the lake (Delta delete by messageId, so no
identifier is written into the table's commit log, then vacuum of the
replaced files) and the quarantine. SQLite files are checkpointed and
vacuumed so deleted pages do not linger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from kirana.eventlog.protocol import EventLog
from kirana.eventlog.records import EVENT, QUARANTINE
from kirana.identity.rules import Identifier
from kirana.identity.store import SQLProfileStore


@dataclass
class ErasureReport:
    profile_id: str
    identities: list[Identifier]
    lake_rows_deleted: int = 0
    log_records_redacted: int = 0
    quarantine_rows_deleted: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _event_identifiers(event: dict[str, Any]) -> set[str]:
    values = {event.get("userId"), event.get("anonymousId"), event.get("previousId")}
    for traits in (event.get("traits"), (event.get("context") or {}).get("traits")):
        if isinstance(traits, dict):
            values.update(str(traits.get(k)).lower() for k in ("email", "phone") if traits.get(k))
    return {str(v) for v in values if v is not None}


def log_matcher(identities: list[Identifier]):
    """A predicate over log payloads: does this record concern the person?"""
    values = {v for _, v in identities}
    quoted = [json.dumps(v).encode() for v in values]
    decoder = msgspec.json.Decoder()

    def matches(payload: bytes) -> bool:
        kind = payload[:1]
        if kind == EVENT:
            return bool(_event_identifiers(decoder.decode(payload[1:])) & values)
        if kind == QUARANTINE:
            return any(q[1:-1] in payload for q in quoted)
        return False

    return matches


def erase_lake_rows(lake_dir: Path, identities: list[Identifier]) -> int:
    """Delete the person's rows from ``events`` and vacuum the files that held them."""
    path = lake_dir / "events"
    if not (path / "_delta_log").is_dir():
        return 0
    users = [v for t, v in identities if t == "user_id"]
    anons = [v for t, v in identities if t == "anonymous_id"]
    conn = duckdb.connect()
    conn.register("events", DeltaTable(path).to_pyarrow_dataset())
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT message_id FROM events WHERE list_contains($u, user_id) "
            "OR list_contains($a, anonymous_id) OR list_contains($a, previous_id) "
            "OR list_contains($u, previous_id)",
            {"u": users, "a": anons},
        ).fetchall()
    ]
    if not ids:
        return 0
    for attempt in range(10):
        try:
            table = DeltaTable(path)
            deleted = 0
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                listed = ", ".join("'" + i.replace("'", "''") + "'" for i in chunk)
                metrics = table.delete(f"message_id IN ({listed})")
                deleted += int(metrics.get("num_deleted_rows", 0))
            break
        except CommitFailedError:  # the lake loader committed meanwhile: try again
            if attempt == 9:
                raise
            time.sleep(0.2 * (attempt + 1))
    table = DeltaTable(path)
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return deleted


def erase(
    profiles: SQLProfileStore,
    event_log: EventLog,
    lake_dir: Path,
    *,
    identifier: Identifier,
    quarantine_delete: Callable[[list[str]], int],
    drain: Callable[[], bool],
    on_suppressed: Callable[[list[Identifier]], None] = lambda ids: None,
) -> ErasureReport | None:
    """Erase the profile holding ``identifier``; None if no profile holds it."""
    profile = profiles.profile(identifier)
    if profile is None:
        return None
    identities = list(profile.identities)
    report = ErasureReport(profile.profile_id, identities)
    with profiles.transaction():
        profiles.suppress(identities)
    on_suppressed(identities)
    report.log_records_redacted = event_log.redact(log_matcher(identities))
    if not drain():
        raise RuntimeError("consumers did not catch up; erasure stopped before the stores")
    with profiles.transaction():
        profiles.erase_profile(profile.profile_id, identities)
    report.lake_rows_deleted = erase_lake_rows(lake_dir, identities)
    report.quarantine_rows_deleted = quarantine_delete([v for _, v in identities])
    profiles.compact_storage()
    return report
