"""Keeps the identity graph, profile traits and real-time audiences up to date.

The batch's effects and the new position commit in one transaction of the
profile store, and resolution is idempotent, so a crash replays cleanly.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import msgspec

from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.identity.engine import IdentityResolver
from kirana.identity.store import SQLProfileStore
from kirana.profiles.realtime import RealtimeAudiences

#: call types whose identifiers are only userId and anonymousId, unless their context
#: carries traits or a device (identify adds traits, alias a previousId)
_PLAIN_TYPES = frozenset({"track", "page", "screen", "group"})
#: (id type, id value, day) keys this consumer knows are stored; most events repeat one
_DAYS_REMEMBERED = 200_000


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
        self._days_stored: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._days_new: dict[tuple[str, str, str], None] = {}

    def position(self) -> int:
        return self._position

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        self._days_new.clear()
        with self._store.transaction():
            for record in records:
                if record.payload[:1] == EVENT:
                    self._apply(record.payload[1:])
            self._store.record_event_days(list(self._days_new))
            self._store.set_position(self.name, next_offset)
        self._position = next_offset
        for key in self._days_new:
            self._days_stored[key] = None
        while len(self._days_stored) > _DAYS_REMEMBERED:
            self._days_stored.popitem(last=False)

    def _active_on(self, user_id: object, anonymous_id: object, timestamp: object) -> None:
        """Note the identifier the lake files this event under, and the event's UTC day.

        The lake gives an event to its user id, or to its anonymous id when it has none
        (kirana.profiles.timeline reads it back the same way).
        """
        if not isinstance(timestamp, str) or len(timestamp) < 10:
            return
        if isinstance(user_id, str):
            key = ("user_id", user_id, timestamp[:10])
        elif isinstance(anonymous_id, str):
            key = ("anonymous_id", anonymous_id, timestamp[:10])
        else:
            return
        if key not in self._days_stored:
            self._days_new[key] = None

    def _apply(self, raw: bytes) -> None:
        head = self._plain_head(raw)
        if head is not None:
            self._resolver.apply_plain(
                head.userId, head.anonymousId, head.messageId, head.timestamp
            )
            self._active_on(head.userId, head.anonymousId, head.timestamp)
            return
        event = self._decoder.decode(raw)
        profile_id = self._resolver.apply_event(event)
        self._active_on(event.get("userId"), event.get("anonymousId"), event.get("timestamp"))
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
