"""Erase everything Kirana holds about one person.

Order matters: suppress first (no new data arrives), then rewrite the person's records in
the event log as tombstones, then wait until every consumer has passed the log's end (so
none can re-create what is about to be erased), then the profile store, the lake (a
file-level rewrite that writes no identifier into the table's commit log, see
``delta_rows``, then vacuum of the replaced files), then every participant subsystem
(model outputs, serving, decisions, exposures, sync snapshots, delivery queues: see
``participants``), then the quarantine. SQLite files are checkpointed and vacuumed so
deleted pages do not linger.

Running it again is harmless, and it is how a failed erasure is finished: once the profile
is gone, an identifier that is suppressed still gets every identifier-based step again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from deltalake import DeltaTable

from kirana.eventlog.protocol import EventLog
from kirana.eventlog.records import EVENT, QUARANTINE
from kirana.identity.rules import Identifier
from kirana.identity.store import SQLProfileStore
from kirana.identity.store_segments import identifier_digest
from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.participants import ErasureIncomplete, Participant, Person, run_participants


@dataclass
class ErasureReport:
    #: None when the profile was already gone (a repeated or resumed erasure)
    profile_id: str | None
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
    """Delete the person's rows from ``events`` and vacuum the files that held them.

    File by file, so the commit names nobody (`delta_rows`); the vacuum only removes
    files the table has tombstoned, so the lake loader can keep appending meanwhile.
    """
    path = lake_dir / "events"
    users = [v for t, v in identities if t == "user_id"]
    anons = [v for t, v in identities if t == "anonymous_id"]
    match = {"user_id": users, "anonymous_id": anons, "previous_id": users + anons}
    deleted = delete_rows_where_in(path, match)
    if deleted:
        DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
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
    participants: list[tuple[str, Participant]] | None = None,
) -> ErasureReport | None:
    """Erase the profile holding ``identifier``; None if no profile holds it and it was
    never erased. Raises :class:`ErasureIncomplete` when a participant failed (after
    running all the others): run it again with the same identifier to finish."""
    profile = profiles.profile(identifier)
    if profile is None:
        kind, value = identifier
        if (kind, identifier_digest(value)) not in profiles.suppressed():
            return None
        identities, profile_id = [identifier], None  # erased before: redo what ids can find
    else:
        identities, profile_id = list(profile.identities), profile.profile_id
    report = ErasureReport(profile_id, identities)
    with profiles.transaction():
        profiles.suppress(identities)
    on_suppressed(identities)
    report.log_records_redacted = event_log.redact(log_matcher(identities))
    if not drain():
        raise RuntimeError("consumers did not catch up; erasure stopped before the stores")
    if profile_id is not None:
        with profiles.transaction():
            profiles.erase_profile(profile_id, identities)
    report.lake_rows_deleted = erase_lake_rows(lake_dir, identities)
    counts, errors = run_participants(participants or [], Person(profile_id, tuple(identities)))
    report.details.update(counts)
    report.quarantine_rows_deleted = quarantine_delete([v for _, v in identities])
    profiles.compact_storage()
    if errors:
        failed = "; ".join(f"{name}: {error}" for name, error in errors.items())
        raise ErasureIncomplete(
            f"erasure did not finish in {failed}. Fix the cause and run the erasure again "
            "with the same identifier (and each other identifier of the person): it resumes"
        )
    return report
