"""Assemble a profile view: identities and traits from the profile store, events from the lake."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kirana.identity.store import Profile, ProfileStore

ID_TYPES = ("user_id", "anonymous_id", "email", "phone", "device_id")


@dataclass
class ProfileView:
    profile: Profile
    latest_events: list[dict[str, Any]]
    computed_traits: dict[str, Any] = field(default_factory=dict)
    audiences: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        p = self.profile
        return {
            "profile_id": p.profile_id,
            "identities": [{"type": t, "value": v} for t, v in p.identities],
            "traits": p.traits,
            "computed_traits": self.computed_traits,
            "audiences": self.audiences,
            "merged_from": [
                {
                    "from_profile": m.from_profile,
                    "at": m.timestamp.isoformat(),
                    "message_id": m.message_id,
                }
                for m in p.merged_from
            ],
            "latest_events": self.latest_events,
        }


def find_profile(
    store: ProfileStore, lake_dir: Path, identifier: str, id_type: str | None, events: int
) -> ProfileView | None:
    """The profile holding ``identifier`` (of ``id_type``, or of any type, strongest first)."""
    candidates = [id_type] if id_type else list(ID_TYPES)
    for candidate in candidates:
        value = identifier.lower() if candidate == "email" else identifier
        profile = store.profile((candidate, value))
        if profile is not None:
            return ProfileView(
                profile,
                latest_events(lake_dir, profile, events),
                computed_traits=store.computed_values(profile.profile_id),
                audiences=store.audiences_of(profile.profile_id),
            )
    return None


def latest_events(lake_dir: Path, profile: Profile, limit: int) -> list[dict[str, Any]]:
    """The profile's most recent events from the lake, newest first.

    An event that carries a user id belongs to that user's profile even when
    its anonymous id belongs to someone else's (a shared device).
    """
    if limit == 0:
        return []
    from kirana.lake.catalog import connect, lake_tables

    if "events" not in lake_tables(lake_dir):
        return []
    users = [v for t, v in profile.identities if t == "user_id"]
    anons = [v for t, v in profile.identities if t == "anonymous_id"]
    conn = connect(lake_dir)
    rows = conn.execute(
        "SELECT message_id, type, event, name, user_id, anonymous_id, timestamp, properties "
        "FROM events WHERE list_contains($users, user_id) "
        "OR (user_id IS NULL AND list_contains($anons, anonymous_id)) "
        "ORDER BY timestamp DESC, message_id LIMIT $limit",
        {"users": users, "anons": anons, "limit": limit},
    ).fetchall()
    columns = ["message_id", "type", "event", "name", "user_id", "anonymous_id", "timestamp"]
    out = []
    for row in rows:
        item = {c: v for c, v in zip(columns, row[:7], strict=True) if v is not None}
        item["timestamp"] = row[6].isoformat()
        item["properties"] = json.loads(row[7]) if row[7] else {}
        out.append(item)
    return out
