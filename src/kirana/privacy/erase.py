"""Erase everything Kirana holds about people, one person or a batch at once.

The order is what makes it hold (docs/profiles.md, "Why nothing comes back"):

1. **Suppress** the people's identifiers (the profile store keeps digests; every process's
   list is updated), then wait out the *grace period*: every event judged under the old
   list — by the collector, or a derived event on its way to the log — is durable in the
   log by then, and every later one is judged under the new list (``privacy.gate``). From
   this *erasure point* on, no record of theirs can enter the log.
2. **Drain**: wait until every consumer has passed the log's end. Whatever of theirs was
   acknowledged before — even a batch a consumer had read and was still applying — has now
   landed in the stores, where step 4 finds it.
3. **Expand**: events just consumed may have linked more identifiers to them; if so,
   suppress those too and repeat from 1, until the identity graph gives nothing new.
4. **Remove**, with no consumer able to bring anything back: redact their log records (the
   consumers are past them; a replay reads tombstones), delete their profiles, their rows
   of the ``events`` table (one file-level rewrite for the whole batch, ``delta_rows``),
   run every participant once for the whole batch, delete their quarantined events, and
   rebuild the profile store. Each store is rewritten once per call, whatever the batch.

Running it again is harmless, and it is how a failed erasure is finished: suppressed
identifiers still get every identifier-based step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from kirana.eventlog.protocol import EventLog
from kirana.identity.rules import Identifier, IdentityRules
from kirana.identity.store import SQLProfileStore
from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.log_match import log_matcher
from kirana.privacy.participants import (
    ErasureIncomplete,
    Participant,
    People,
    counting_rewrites,
    note_rewrite,
    run_participants,
)
from kirana.privacy.suppression import event_owner, readable_event
from kirana.privacy.targets import ErasureTarget, TargetState, expand, resolve

#: Expansion rounds before giving up (each round needs a newly linked identifier).
MAX_ROUNDS = 10


@dataclass
class ErasedPerson:
    """One target of the request, and what it came to."""

    target: ErasureTarget
    #: profiles that held their identifiers (empty: known to no profile)
    profile_ids: list[str]
    #: every identifier erased and now suppressed for them
    identities: list[Identifier]


@dataclass
class ErasureReport:
    people: list[ErasedPerson]
    lake_rows_deleted: int = 0
    log_records_redacted: int = 0
    quarantine_rows_deleted: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: "<operation> <store>" -> how many times it was rewritten (one per batch)
    rewrites: dict[str, int] = field(default_factory=dict)


@dataclass
class Stores:
    """Where the people's data lives, and how to reach the parts that run elsewhere."""

    profiles: SQLProfileStore
    event_log: EventLog
    lake_dir: Path
    rules: IdentityRules
    #: delete quarantined events mentioning any of these values that ``owned`` accepts
    #: (given their raw text), and rebuild the file
    quarantine_delete: Callable[[list[str], Callable[[str], bool]], int]
    #: wait until every consumer has passed the log's end; False on timeout
    drain: Callable[[], bool] = lambda: True
    #: suppress in every process, then wait out the grace period (privacy.gate)
    suppress: Callable[[list[Identifier]], None] = lambda ids: None
    #: drop cached identity look-ups in every process
    forget: Callable[[], None] = lambda: None
    participants: list[tuple[str, Participant]] = field(default_factory=list)


def lake_row_event(row: dict[str, Any]) -> dict[str, Any]:
    """The part of an ``events`` row the identity rules read, as the event it came from."""

    def parsed(text: Any) -> Any:
        try:
            return json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None

    return {
        "type": row.get("type"),
        "userId": row.get("user_id"),
        "anonymousId": row.get("anonymous_id"),
        "previousId": row.get("previous_id"),
        "traits": parsed(row.get("traits")),
        "context": parsed(row.get("context")),
    }


def quarantined_theirs(identities: list[Identifier], rules: IdentityRules) -> Callable[[str], bool]:
    """Is a quarantined event that quotes one of their values theirs? Yes when its raw
    text is readable and its strongest identifier is theirs, or when it names nobody by
    the identity rules (unreadable, or no usable identifier): as ``log_match`` judges."""
    people = set(identities)

    def theirs(raw: str) -> bool:
        owner = event_owner(readable_event(raw), rules)
        return owner is None or owner in people

    return theirs


def erase_lake_rows(lake_dir: Path, identities: list[Identifier], rules: IdentityRules) -> int:
    """Delete the people's rows from ``events`` and vacuum the files that held them.

    A row naming one of their user or anonymous ids is theirs when its strongest
    identifier is one of theirs (``event_owner``, as at the collector): someone else's row
    that quotes their old anonymous id stays. File by file, so the commit names nobody
    (``delta_rows``); the vacuum only removes files the table has tombstoned, so the lake
    loader can keep appending meanwhile.
    """
    path = lake_dir / "events"
    people = set(identities)
    users = sorted({v for t, v in identities if t == "user_id"})
    anons = sorted({v for t, v in identities if t == "anonymous_id"})
    match = {"user_id": users, "anonymous_id": anons, "previous_id": users + anons}
    deleted = delete_rows_where_in(
        path, match, owned=lambda row: event_owner(lake_row_event(row), rules) in people
    )
    if deleted:
        note_rewrite("vacuum", path)
        DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return deleted


def _settle(stores: Stores, states: list[TargetState]) -> None:
    """Steps 1-3: suppress, grace period, drain, expand; until the graph gives nothing new."""
    suppressed: set[Identifier] = set()
    for _ in range(MAX_ROUNDS):
        new = {i for s in states for i in s.identities} - suppressed
        if new:
            with stores.profiles.transaction():
                stores.profiles.suppress(sorted(new))
            stores.suppress(sorted(new))
            suppressed |= new
        if not stores.drain():
            raise RuntimeError("consumers did not catch up; erasure stopped before the stores")
        if not expand(stores.profiles, states):
            return
    raise RuntimeError(f"the people's identifiers kept growing after {MAX_ROUNDS} rounds")


def _erase_profiles(profiles: SQLProfileStore, states: list[TargetState]) -> None:
    """Each profile with its own identifiers (identifiers no profile holds may still have
    rows keyed by them, such as traits): one transaction, statements linear in the batch."""
    by_profile: dict[str, set[Identifier]] = {}
    for state in states:
        for pid in state.profile_ids:
            by_profile.setdefault(pid, set()).update(state.identities)
    held = set().union(*by_profile.values()) if by_profile else set()
    orphans = {i for s in states for i in s.identities} - held
    with profiles.transaction():
        for pid, ids in sorted(by_profile.items()):
            profiles.erase_profile(pid, sorted(ids))
        if orphans:
            profiles.erase_profile("", sorted(orphans))


def erase_people(stores: Stores, targets: list[ErasureTarget]) -> ErasureReport:
    """Erase every target (see the module docstring). Raises :class:`ErasureIncomplete`
    when a participant failed (after running all the others): run it again to finish."""
    with counting_rewrites() as rewrites:
        states = resolve(stores.profiles, targets)
        _settle(stores, states)
        identities = sorted({i for s in states for i in s.identities})
        profile_ids = sorted({p for s in states for p in s.profile_ids})
        report = ErasureReport(
            [ErasedPerson(s.target, sorted(s.profile_ids), sorted(s.identities)) for s in states]
        )
        report.log_records_redacted = stores.event_log.redact(log_matcher(identities, stores.rules))
        _erase_profiles(stores.profiles, states)
        report.lake_rows_deleted = erase_lake_rows(stores.lake_dir, identities, stores.rules)
        counts, errors = run_participants(
            stores.participants, People(tuple(profile_ids), tuple(identities))
        )
        report.details.update(counts)
        report.quarantine_rows_deleted = stores.quarantine_delete(
            sorted({v for _, v in identities}), quarantined_theirs(identities, stores.rules)
        )
        note_rewrite("vacuum", "operational store")
        note_rewrite("vacuum", "profile store")
        stores.profiles.compact_storage()
        stores.forget()
    report.rewrites = dict(rewrites)
    if errors:
        failed = "; ".join(f"{name}: {error}" for name, error in errors.items())
        raise ErasureIncomplete(
            f"erasure did not finish in {failed}. Fix the cause and run the erasure again "
            "with the same identifiers: it resumes"
        )
    return report
