"""Identifiers whose events Kirana must no longer keep, and whose events those are.

Only digests are kept (SHA-256 of the value), so the list itself does not retain the
erased person's identifiers.

**Whose event is it.** An event belongs to the owner of its *strongest* identifier, by
``identity.rules`` priority (``user_id``, then ``email``, ``phone``, ``device_id``,
``anonymous_id``): the identifier the identity engine resolves the event's profile by
(:func:`event_owner`, the head of ``identity.rules.identifiers``). An event is suppressed
exactly when that identifier is on the list. So Bob's event on a shared tablet whose
``context.device.id`` was erased with its first customer is still Bob's (his ``userId``
is stronger) and is kept; an event without a ``userId`` whose strongest identifier is an
erased e-mail in ``context.traits`` is the erased person's and is dropped. An erased
identifier *quoted* in someone else's kept event stays in that event: it is their record.
Invalid events are judged on what can be read of their raw JSON, so an erased person's
malformed events are not quarantined either.

The collector consults this on the hot path, so the list is an in-memory set. Another
process (``kirana privacy delete``, another API process) may add to it, so every few
seconds a background thread reads the profile store's *suppression version* (one row,
bumped in the transaction of every ``suppress``) and reloads the whole list only when it
changed. Every change of the set goes through a :class:`~kirana.privacy.gate.JudgementGate`
under its lock, so a reload never loses a concurrent :meth:`SuppressionList.add`, and an
erasure can wait until no event judged under the old list is still on its way to the log.
"""

from __future__ import annotations

import logging
import threading
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

_log = logging.getLogger(__name__)
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


def event_owner(event: Mapping[str, Any], rules: IdentityRules) -> Identifier | None:
    """The identifier that says whose event this is: its strongest, as the identity
    engine resolves it (None when the event carries no usable identifier)."""
    found, _ = identifiers(event, rules)  # type: ignore[arg-type]
    return found[0] if found else None


class SuppressionList:
    """The suppressed identifiers (as digests), judged against whole events.

    ``load`` reads the whole stored list; ``version`` (optional) reads a token that changes
    whenever the stored list does. Without ``version`` every check reloads the list.
    """

    def __init__(
        self,
        load: Callable[[], set[Identifier]],
        rules: IdentityRules | None = None,
        reload_every: float = 5.0,
        version: Callable[[], str | None] | None = None,
    ) -> None:
        self._load = load
        self._version = version
        self._rules = rules or IdentityRules()
        self._every = reload_every
        self._gate = JudgementGate()
        self._known: str | None = version() if version is not None else None
        self._ids: frozenset[Identifier] = frozenset(load())
        self._checked = time.monotonic()
        self._refreshing = threading.Lock()

    def add(self, identifiers_: Iterable[Identifier]) -> int:
        """Suppress these (plain) identifiers from now on, in this process; returns the
        generation to pass to :meth:`wait_for_judgements`."""
        digests = {(t, identifier_digest(v)) for t, v in identifiers_}
        return self._gate.advance(lambda: self._publish(digests))

    def _publish(self, digests: Iterable[Identifier]) -> None:
        """Union into the set; only ever called under the gate's lock (``advance``)."""
        self._ids = self._ids | frozenset(digests)

    def reload(self) -> None:
        """Read the stored list now (another process has just erased someone)."""
        version = self._version() if self._version is not None else None
        stored = frozenset(self._load())
        self._gate.advance(lambda: self._publish(stored))
        self._known = version
        self._checked = time.monotonic()

    def refresh(self) -> bool:
        """Reload the list if the stored version changed since the last load; True if it
        did. Cheap when nothing changed: one point read, not the list."""
        if self._version is None:
            self.reload()
            return True
        version = self._version()  # read before the list: a change after it is seen next
        if version == self._known:
            return False
        stored = frozenset(self._load())
        self._gate.advance(lambda: self._publish(stored))
        self._known = version
        return True

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the store is away: keep the list, try again later
            _log.warning("suppression list not refreshed: %s", type(exc).__name__)
        finally:
            self._checked = time.monotonic()
            self._refreshing.release()

    def close(self, timeout: float = 30.0) -> None:
        """Start no more checks and wait for a running one: call it before closing the
        store the list reads (a read on a connection being closed can crash SQLite)."""
        self._refreshing.acquire(timeout=timeout)  # held from now on: no check starts

    def judging(self) -> AbstractContextManager[None]:
        """Hold this block (checks and the append of what passed them) as one judgement."""
        return self._gate.judging()

    def wait_for_judgements(self, generation: int, timeout: float = 60.0) -> bool:
        """Wait until every judgement that began before ``generation`` has ended."""
        return self._gate.wait_before(generation, timeout)

    def _current(self) -> frozenset[Identifier]:
        """The set as it is; when a check is due, start one off the request path."""
        if time.monotonic() - self._checked > self._every and self._refreshing.acquire(False):
            self._checked = time.monotonic()
            threading.Thread(
                target=self._refresh_in_background, name="suppression-refresh", daemon=True
            ).start()
        return self._ids

    def holds(self, identifier: Identifier) -> bool:
        kind, value = identifier
        ids = self._current()
        return bool(ids) and (kind, _digest(value)) in ids

    def __call__(self, user_id: str | None, anonymous_id: str | None) -> bool:
        """Is the event of these ids an erased person's? (For callers that only know the
        two ids: the ``userId`` decides when there is one, as in :func:`event_owner`.)"""
        if not self._current():
            return False
        owner = event_owner({"userId": user_id, "anonymousId": anonymous_id}, self._rules)
        return owner is not None and self.holds(owner)

    def event(self, event: Mapping[str, Any] | bytes) -> bool:
        """Is ``event`` an erased person's (its strongest identifier suppressed)? ``event``
        may be the raw bytes of an invalid event: it is judged on what of it can be read."""
        ids = self._current()
        if not ids or not event:
            return False
        if isinstance(event, bytes):
            event = readable_event(event)
        owner = event_owner(event, self._rules)
        return owner is not None and (owner[0], _digest(owner[1])) in ids

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
