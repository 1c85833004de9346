"""Which queued records may go out now without breaking order per user (pure).

Records are walked in queue order. A record that is still backing off blocks
every later record of its user (they wait), but no one else's; a record that
failed before travels alone, so a poison record cannot drag healthy ones
into its retries; and a batch never holds a user's later record without
every earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Candidate(NamedTuple):
    """A queued record as the picker sees it (a plain row: thousands are scanned a pass)."""

    id: int
    user: str
    attempts: int
    next_attempt_at: float


def pick_batch(candidates: Iterable[Candidate], now: float, limit: int) -> list[int]:
    """Ids of the records to deliver next, in order."""
    blocked: set[str] = set()
    batch: list[int] = []
    for c in candidates:
        if c.user in blocked:
            continue
        if c.next_attempt_at > now:
            blocked.add(c.user)
            continue
        if c.attempts > 0:
            if batch:
                blocked.add(c.user)  # it goes alone, next time; its user waits for it
                continue
            return [c.id]
        batch.append(c.id)
        if len(batch) >= limit:
            break
    return batch


def next_due(candidates: Iterable[Candidate]) -> float | None:
    """When the next of ``candidates`` may go: the earliest retry time among the first
    record of each user (a user's later records wait for it, whatever their own time says).

    ``None`` when there are no candidates. Taking the minimum over every record instead
    woke the deliverer every 10 ms while a user's later record, long due, waited behind a
    head still backing off.
    """
    heads: dict[str, float] = {}
    for c in candidates:
        heads.setdefault(c.user, c.next_attempt_at)
    return min(heads.values(), default=None)
