"""What travels through a delivery queue: one :class:`OutboundRecord` per change.

A record is either a Segment event (``action="event"``) or a change to an
entity identified by ``key`` — a sync row or an audience membership
(``upsert``, ``insert``, ``delete``). Every backend understands all four, so
any stream can be routed to any destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["event", "upsert", "insert", "delete"]
ACTIONS: tuple[str, ...] = ("event", "upsert", "insert", "delete")


@dataclass(slots=True)
class OutboundRecord:
    """One change for one destination.

    ``record_id`` is the idempotency key: the same change always gets the same
    id (an event's messageId, a sync row's key and before/after hashes), so a
    replay is recognised by the queue and by the receiver. ``user`` orders
    delivery (a user's records arrive in the order they were queued).
    """

    record_id: str
    user: str
    key: str
    action: Action
    data: dict[str, Any]
    #: the audience or sync the record belongs to (None for plain events)
    collection: str | None = None
    attempts: int = field(default=0, compare=False)

    def wire(self) -> dict[str, Any]:
        """The record as JSON-ready dict (what webhooks and file drops receive)."""
        return {
            "idempotency_key": self.record_id,
            "action": self.action,
            "key": self.key,
            "collection": self.collection,
            "data": self.data,
        }
