"""``Audience Entered`` / ``Audience Exited`` as ordinary Segment track events.

They go into the event log like any event, so the lake, the profile view and
every destination receive them. Their messageIds are derived from the
audience, the profile and how many transitions that pair has had, so a refresh
that is retried after a crash re-emits the same ids and the lake dedupes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

KIRANA_SOURCE = "kirana"
_NAMESPACE = uuid.UUID("6f1c2d7e-4b0a-4a53-9e35-6b5d3f0a8c11")


def identity_index(identities: pa.Table) -> dict[str, tuple[str, str]]:
    """profile_id -> the identifier to address events to (a user id if it has one)."""
    best: dict[str, tuple[str, str]] = {}
    for id_type, value, pid in zip(
        identities.column("id_type").to_pylist(),
        identities.column("id_value").to_pylist(),
        identities.column("profile_id").to_pylist(),
        strict=True,
    ):
        if id_type == "user_id" or (pid not in best and id_type == "anonymous_id"):
            best[pid] = (id_type, value)
    return best


def audience_events(
    audience: str,
    entered: Sequence[str],
    exited: Sequence[str],
    index: dict[str, tuple[str, str]],
    transitions: dict[str, int],
    now: datetime,
) -> list[dict[str, Any]]:
    """Canonical events for membership changes (``transitions``: prior changes per profile)."""
    if not entered and not exited:
        return []
    stamp = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    events = []
    for change, profiles in (("Entered", entered), ("Exited", exited)):
        for pid in profiles:
            ident = index.get(pid)
            if ident is None:
                continue
            n = transitions.get(pid, 0)
            event: dict[str, Any] = {
                "type": "track",
                "event": f"Audience {change}",
                "messageId": str(uuid.uuid5(_NAMESPACE, f"{audience}|{pid}|{change}|{n}")),
                "properties": {"audience": audience, "profile_id": pid},
                "timestamp": stamp,
                "receivedAt": stamp,
                "sourceId": KIRANA_SOURCE,
            }
            event["userId" if ident[0] == "user_id" else "anonymousId"] = ident[1]
            events.append(event)
    return events
