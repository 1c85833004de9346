"""Assemble a profile view: identities and traits from the profile store, events from the lake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
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
                latest_events(lake_dir, profile, events, store),
                computed_traits=store.computed_values(profile.profile_id),
                audiences=store.audiences_of(profile.profile_id),
            )
    return None


def latest_events(
    lake_dir: Path, profile: Profile, limit: int, store: ProfileStore | None = None
) -> list[dict[str, Any]]:
    """The profile's most recent events from the lake, newest first.

    An event that carries a user id belongs to that user's profile even when
    its anonymous id belongs to someone else's (a shared device). With the profile
    store, only the days its identifiers were active are read (kirana.profiles.timeline).
    """
    if limit == 0:
        return []
    from kirana.profiles.timeline import timeline_of

    users = [v for t, v in profile.identities if t == "user_id"]
    anons = [v for t, v in profile.identities if t == "anonymous_id"]
    days = None
    if store is not None:
        keys = [(t, v) for t, v in profile.identities if t in ("user_id", "anonymous_id")]
        days = [date.fromisoformat(d) for d in store.event_days(keys)]
    return timeline_of(lake_dir).latest(users, anons, days, limit)
