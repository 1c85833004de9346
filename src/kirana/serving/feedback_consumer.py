"""The feedback consumer: impressions and clicks from the event log into ranking statistics.

Reads ``Promotion Viewed`` (an impression), ``Promotion Clicked``, ``Product Clicked`` and
``Product Added`` (clicks) that carry a Kirana tracking token in ``properties.tracking_id``
(the personalise API hands one out per shown item), and updates the decayed per-arm,
per-segment counts the ranking uses. Other events cost a substring test: the consumer sees
every event in the log, and most are not feedback.

Exactly once: the counts, the (slot, kind) marks that make retried events idempotent, the
frequency-cap impressions and the log position are committed in one SQLite transaction
(:mod:`kirana.serving.feedback_store`). The API reads the counts from the same file within a
second (``automation.refresh_seconds``), whichever process runs this consumer.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import msgspec

from kirana.automation.ranking import FEEDBACK_EVENTS
from kirana.automation.stats import StatsKey
from kirana.automation.tracking import TokenError, decode_token, feedback_targets
from kirana.eventlog.protocol import EventLog, LogRecord
from kirana.eventlog.records import EVENT
from kirana.serving.content_store import ContentStore
from kirana.serving.feedback_store import FeedbackStore

log = logging.getLogger(__name__)

_MARK = b'"tracking_id"'
SEEN_DAYS = 14  # how long a counted slot is remembered (beyond the log's retention)
CAP_DAYS = 31  # the longest frequency-cap window worth keeping impressions for


class _Event(msgspec.Struct):
    type: str = ""
    event: str | None = None
    userId: str | None = None
    anonymousId: str | None = None
    timestamp: datetime | None = None
    properties: dict[str, Any] = {}


_decoder = msgspec.json.Decoder(_Event)


def user_key(user_id: str | None, anonymous_id: str | None) -> str | None:
    """Who a frequency cap counts for: the user id when there is one, else the anonymous id.

    The personalise API applies the same rule to its query, so a request and the events it
    leads to agree on the key.
    """
    if user_id:
        return f"u:{user_id}"
    if anonymous_id:
        return f"a:{anonymous_id}"
    return None


class FeedbackConsumer:
    """Applies feedback events to :class:`FeedbackStats` and saves them durably."""

    name = "content-feedback"
    max_batch = 5_000
    linger = 0.2

    def __init__(
        self,
        event_log: EventLog,
        store: FeedbackStore,
        content: ContentStore,
        half_life_seconds: float,
    ) -> None:
        self._store = store
        self._content = content
        self._half_life = half_life_seconds
        self._stats, _ = store.load_stats(half_life_seconds)
        stored = store.position(self.name)
        self._position = stored if stored is not None else event_log.start_offset
        self._capped: frozenset[str] = frozenset()
        self._content_revision = -1
        self._pruned_at = 0.0
        self.applied = 0  # feedback events counted (for tests and status)
        self.ignored = 0  # events with a tracking_id that is not a valid token

    def position(self) -> int:
        return self._position

    def _capped_widgets(self) -> frozenset[str]:
        revision = self._content.revision()
        if revision != self._content_revision:
            self._capped = frozenset(
                w.key for w in self._content.widgets() if w.frequency_cap is not None
            )
            self._content_revision = revision
        return self._capped

    def _feedback(self, records: list[LogRecord]) -> list[tuple[Any, ...]]:
        out = []
        for record in records:
            payload = record.payload
            if payload[:1] != EVENT or _MARK not in payload:
                continue
            try:
                event = _decoder.decode(payload[1:])
            except msgspec.DecodeError:
                continue
            kind = FEEDBACK_EVENTS.get(event.event or "") if event.type == "track" else None
            value = event.properties.get("tracking_id")
            if kind is None or value is None or event.timestamp is None:
                continue
            try:
                token = decode_token(value)
            except TokenError:
                self.ignored += 1
                continue
            who = user_key(event.userId, event.anonymousId)
            out.append((kind, token, event.timestamp.timestamp(), who))
        return out

    def handle(self, records: list[LogRecord], next_offset: int) -> None:
        feedback = self._feedback(records)
        capped = self._capped_widgets() if feedback else frozenset()
        applied = 0
        try:
            with self._store.transaction() as rev:
                touched: set[StatsKey] = set()
                caps: list[tuple[str, str, str, float]] = []
                for kind, token, t, who in feedback:
                    if not self._store.mark_seen(token.slot_id, kind, t):
                        continue
                    applied += 1
                    for arm, epoch in feedback_targets(
                        kind,
                        token.widget,
                        token.widget_epoch,
                        token.item_arm,
                        token.item_epoch,
                        token.item_position,
                    ):
                        self._stats.observe(
                            token.placement,
                            arm,
                            token.segment,
                            t,
                            clicked=kind == "click",
                            impression=kind == "impression",
                            epoch=epoch,
                        )
                        touched.add(StatsKey(token.placement, arm, token.segment))
                        touched.add(StatsKey(token.placement, arm))
                    first_item = token.item_position == 0
                    if kind == "impression" and first_item and token.widget in capped and who:
                        caps.append((who, token.widget, token.slot_id, t))
                self._store.save_cells(self._stats, touched, rev)
                self._store.add_cap_impressions(caps)
                self._store.set_position(self.name, next_offset)
        except BaseException:
            # the in-memory counts may hold part of the failed batch: start again from disk
            self._stats, _ = self._store.load_stats(self._half_life)
            raise
        self._position = next_offset
        self.applied += applied

    def idle(self) -> None:
        now = time.time()
        if now - self._pruned_at > 3600:
            self._pruned_at = now
            seen, caps = self._store.prune(now - SEEN_DAYS * 86400, now - CAP_DAYS * 86400)
            if seen or caps:
                log.info("feedback: forgot %d counted slots and %d cap impressions", seen, caps)

    def close(self) -> None:
        self._store.close()
        self._content.close()
