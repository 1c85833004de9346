"""Identifiers whose events the collector must no longer accept.

Only digests are kept (SHA-256 of the value), so the list itself does not
retain the erased person's identifiers.

The collector consults this on the hot path, so it is an in-memory set,
reloaded from the profile store every few seconds (another process, such as
``kirana privacy delete``, may have added to it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kirana.identity.rules import Identifier
from kirana.identity.store_segments import identifier_digest


class SuppressionList:
    def __init__(self, load: Callable[[], set[Identifier]], reload_every: float = 5.0) -> None:
        self._load = load
        self._every = reload_every
        self._ids = load()
        self._loaded = time.monotonic()

    def add(self, identifiers: Iterable[Identifier]) -> None:
        """Suppress these (plain) identifiers from now on, in this process."""
        self._ids = self._ids | {(t, identifier_digest(v)) for t, v in identifiers}

    def reload(self) -> None:
        """Read the stored list now (another process has just erased someone)."""
        self._ids = self._load() | self._ids
        self._loaded = time.monotonic()

    def __call__(self, user_id: str | None, anonymous_id: str | None) -> bool:
        if time.monotonic() - self._loaded > self._every:
            self._ids = self._load() | self._ids
            self._loaded = time.monotonic()
        if not self._ids:
            return False
        return (user_id is not None and ("user_id", identifier_digest(user_id)) in self._ids) or (
            anonymous_id is not None
            and ("anonymous_id", identifier_digest(anonymous_id)) in self._ids
        )
