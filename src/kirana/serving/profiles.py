"""Who is asking: identities to the canonical profile, with a short-lived cache.

The personalise API resolves a ``userId`` or ``anonymousId`` to the profile identity
resolution built, and reads what ranking uses: computed traits (affinities), audience
memberships (targeting, learning segment) and traits (for experiment targeting): one query
on the profile store (``profile_summary``; three more when traits are wanted); the cache
(``automation.profile_cache_seconds``) absorbs bursts from the same user (a page view asks
for several placements at once) and bounds staleness: a new audience membership shows within
that many seconds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kirana.identity.store import SQLProfileStore


@dataclass(frozen=True)
class ResolvedUser:
    """The requester: the ids they asked with and, when identity resolution knows them,
    their profile (``profile_user_id``: the profile's user id, also for anonymous visits)."""

    user_id: str | None
    anonymous_id: str | None
    profile_id: str | None = None
    profile_user_id: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Any] = field(default_factory=dict)
    audiences: frozenset[str] = frozenset()

    @property
    def known(self) -> bool:
        return self.profile_id is not None

    @property
    def key(self) -> str:
        """Frequency caps count per the id asked with: user id, else anonymous id (the events
        the app sends back carry the same ids; see ``feedback_consumer.user_key``)."""
        return f"u:{self.user_id}" if self.user_id else f"a:{self.anonymous_id}"

    @property
    def recommendation_key(self) -> str | None:
        """Whose per-user recommendation lists to read (model jobs key them by user id)."""
        return self.user_id or self.profile_user_id


class ProfileReader:
    """Profile lookups through its own profile-store connection, cached for ``ttl`` seconds."""

    def __init__(self, store: SQLProfileStore, ttl: float, max_entries: int = 100_000) -> None:
        #: read traits too (experiment targeting needs them; ranking does not)
        self.with_traits = False
        self._store = store
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[tuple[str | None, str | None], tuple[float, ResolvedUser]] = {}

    def resolve(self, user_id: str | None, anonymous_id: str | None) -> ResolvedUser:
        key = (user_id, anonymous_id)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = self._read(user_id, anonymous_id)
        if self._ttl > 0:
            cache = self._cache
            # Entries expire in insertion order (one ttl for all), so expired ones are at the
            # front: dropping them as we go keeps the cache at about rate x ttl entries.
            # Left to fill up to ``max_entries``, it made the garbage collector's full passes
            # (which visit every cached object) take 100+ ms: the personalise p99.
            for old, (expires, _) in list(itertools.islice(cache.items(), 8)):
                if expires > now and len(cache) < self._max:
                    break
                del cache[old]
            cache.pop(key, None)
            cache[key] = (now + self._ttl, user)
        return user

    def _read(self, user_id: str | None, anonymous_id: str | None) -> ResolvedUser:
        identifier = ("user_id", user_id) if user_id else ("anonymous_id", anonymous_id or "")
        store = self._store
        summary = store.profile_summary(identifier)  # id, computed values, audiences: one query
        if summary is None:
            return ResolvedUser(user_id, anonymous_id)
        traits: Mapping[str, Any] = {}
        profile_user_id = user_id
        if self.with_traits or user_id is None:  # identities and traits: three more reads
            profile = store.profile_by_id(summary.profile_id)
            if profile is None:  # merged away between the two reads
                return ResolvedUser(user_id, anonymous_id)
            traits = profile.traits
            profile_user_id = next((v for t, v in profile.identities if t == "user_id"), None)
        return ResolvedUser(
            user_id,
            anonymous_id,
            summary.profile_id,
            profile_user_id,
            traits,
            summary.computed,
            frozenset(summary.audiences),
        )

    def forget(self) -> None:
        """Drop every cached look-up (after an erasure)."""
        self._cache = {}

    def close(self) -> None:
        self._store.close()
