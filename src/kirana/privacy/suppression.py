"""Identifiers whose events Kirana must no longer keep.

Only digests are kept (SHA-256 of the value), so the list itself does not retain the
erased person's identifiers. An event is suppressed when *any* identifier the identity
rules find in it (``userId``, ``anonymousId``, ``previousId`` of an alias, e-mail, phone
or any configured trait id in ``traits`` / ``context.traits``, ``context.device.id``) is
on the list: the same extraction the identity graph uses (``identity.rules.identifiers``),
so whatever could link an event to the person can also stop it. Invalid events are judged
on what can be read of their raw JSON, so an erased person's malformed events are not
quarantined either.

The collector consults this on the hot path, so it is an in-memory set, reloaded from the
profile store every few seconds (another process, such as ``kirana privacy delete``, may
have added to it). Adding goes through a :class:`~kirana.privacy.gate.JudgementGate`, so an
erasure can wait until no event judged under the old list is still on its way to the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

import msgspec

from kirana.eventlog.records import EVENT, QUARANTINE
from kirana.identity.rules import Identifier, IdentityRules, identifiers
from kirana.identity.store_segments import identifier_digest
from kirana.privacy.gate import JudgementGate

_decode = msgspec.json.Decoder().decode
#: Digests of identifiers seen lately (in memory only): most events come from customers
#: who sent one a moment ago, and a SHA-256 per identifier is most of a judgement's cost.
_digest = lru_cache(maxsize=65_536)(identifier_digest)


def readable_event(raw: bytes | str) -> Mapping[str, Any]:
    """As much of an event as its raw JSON gives (an empty mapping when it is unreadable)."""
    try:
        value = _decode(raw)
    except (msgspec.DecodeError, TypeError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


class SuppressionList:
    """The suppressed identifiers (as digests), judged against whole events."""

    def __init__(
        self,
        load: Callable[[], set[Identifier]],
        rules: IdentityRules | None = None,
        reload_every: float = 5.0,
    ) -> None:
        self._load = load
        self._rules = rules or IdentityRules()
        self._every = reload_every
        self._gate = JudgementGate()
        self._ids: frozenset[Identifier] = frozenset(load())
        self._loaded = time.monotonic()

    def add(self, identifiers_: Iterable[Identifier]) -> int:
        """Suppress these (plain) identifiers from now on, in this process; returns the
        generation to pass to :meth:`wait_for_judgements`."""
        digests = {(t, identifier_digest(v)) for t, v in identifiers_}

        def publish() -> None:
            self._ids = self._ids | digests

        return self._gate.advance(publish)

    def reload(self) -> None:
        """Read the stored list now (another process has just erased someone)."""
        stored = frozenset(self._load())
        self._gate.advance(lambda: setattr(self, "_ids", self._ids | stored))
        self._loaded = time.monotonic()

    def judging(self) -> AbstractContextManager[None]:
        """Hold this block (checks and the append of what passed them) as one judgement."""
        return self._gate.judging()

    def wait_for_judgements(self, generation: int, timeout: float = 60.0) -> bool:
        """Wait until every judgement that began before ``generation`` has ended."""
        return self._gate.wait_before(generation, timeout)

    def _current(self) -> frozenset[Identifier]:
        if time.monotonic() - self._loaded > self._every:
            stored = frozenset(self._load())
            self._ids = self._ids | stored
            self._loaded = time.monotonic()
        return self._ids

    def holds(self, identifier: Identifier) -> bool:
        kind, value = identifier
        ids = self._current()
        return bool(ids) and (kind, _digest(value)) in ids

    def __call__(self, user_id: str | None, anonymous_id: str | None) -> bool:
        """Is either of these ids suppressed? (For callers that only know the two ids.)"""
        if not self._current():
            return False
        return (user_id is not None and self.holds(("user_id", user_id))) or (
            anonymous_id is not None and self.holds(("anonymous_id", anonymous_id))
        )

    def event(self, event: Mapping[str, Any] | bytes) -> bool:
        """Does any identifier of ``event`` belong to an erased person? ``event`` may be
        the raw bytes of an invalid event: it is judged on what of it can be read."""
        ids = self._current()
        if not ids or not event:
            return False
        if isinstance(event, bytes):
            event = readable_event(event)
        found, _ = identifiers(event, self._rules)  # type: ignore[arg-type]
        return any((t, _digest(v)) in ids for t, v in found)

    def record(self, payload: bytes) -> bool:
        """Judge an encoded log record (an event, or a quarantined event's raw text)."""
        if not self._current():
            return False
        kind = payload[:1]
        if kind == EVENT:
            return self.event(readable_event(payload[1:]))
        if kind == QUARANTINE:
            raw = readable_event(payload[1:]).get("raw")
            return isinstance(raw, str) and self.event(readable_event(raw))
        return False
