"""Keeps the identity graph, profile traits and real-time audiences up to date.

The batch's effects and the new position commit in one transaction of the
profile store, and resolution is idempotent, so a crash replays cleanly.
"""

from __future__ import annotations

import time

import msgspec

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.identity.engine import IdentityResolver
from kirana.identity.store import SQLProfileStore
from kirana.profiles.realtime import RealtimeAudiences

#: call types whose identifiers are only userId and anonymousId, unless their context
#: carries traits or a device (identify adds traits, alias a previousId)
_PLAIN_TYPES = frozenset({"track", "page", "screen", "group"})


class _Head(msgspec.Struct):
    """The few fields that decide whether an event needs the whole-event path."""

    type: str = ""
    messageId: str = ""
    timestamp: str = ""
    userId: str | None = None
    anonymousId: str | None = None
    event: str | None = None
    context: msgspec.Raw = msgspec.Raw(b"null")  # kept undecoded: only searched


class ProfileConsumer:
    name = "profiles"
    max_batch = 5_000
    linger = 0.2

    def __init__(
        self,
        event_log: EventLog,
        store: SQLProfileStore,
        resolver: IdentityResolver,
        realtime: RealtimeAudiences | None = None,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self._realtime = realtime
        self._last_prune = 0.0
        stored = store.get_position(self.name)
        self._position = stored if stored is not None else event_log.start_offset
        self._decoder = msgspec.json.Decoder()
        self._head = msgspec.json.Decoder(_Head)

    def position(self) -> int:
        return self._position

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        with self._store.transaction():
            for record in records:
                if record.payload[:1] == EVENT:
                    self._apply(record.payload[1:])
            self._store.set_position(self.name, next_offset)
        self._position = next_offset

    def _apply(self, raw: bytes) -> None:
        head = self._plain_head(raw)
        if head is not None:
            self._resolver.apply_plain(
                head.userId, head.anonymousId, head.messageId, head.timestamp
            )
            return
        event = self._decoder.decode(raw)
        profile_id = self._resolver.apply_event(event)
        if self._realtime is not None:
            self._realtime.on_event(event, profile_id)

    def _plain_head(self, raw: bytes) -> _Head | None:
        """The head of an event the fast path handles exactly, else None.

        Most events are track calls from people already in the graph, carrying no
        traits, that no real-time audience looks at: decoding seven fields instead of the
        whole event (properties, context) is most of the consumer's saving on them.
        A context that merely mentions "traits" or "device" anywhere takes the full path.
        """
        try:
            head = self._head.decode(raw)
        except msgspec.ValidationError:  # an id that is a number, say: the general path
            return None
        if head.type not in _PLAIN_TYPES or not head.messageId or not head.timestamp:
            return None
        if b'"traits"' in (ctx := bytes(head.context)) or b'"device"' in ctx:
            return None
        if self._realtime is not None and self._realtime.wants(head.type, head.event):
            return None
        return head

    def idle(self) -> None:
        if self._realtime is not None and time.monotonic() - self._last_prune > 60:
            self._last_prune = time.monotonic()
            with self._store.transaction():
                self._realtime.prune()

    def close(self) -> None:
        self._store.close()
