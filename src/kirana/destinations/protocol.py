"""The one interface every destination backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kirana.destinations.records import OutboundRecord


class Destination(Protocol):
    """Somewhere records are delivered to.

    ``deliver`` either returns (every record applied, in order) or raises a
    :class:`kirana.destinations.errors.DeliveryError` that says whether a retry
    can help. Receivers must tolerate a record arriving twice (a crash between
    delivery and acknowledgement replays it) — each carries a stable
    idempotency key for that.
    """

    def deliver(self, records: Sequence[OutboundRecord]) -> None: ...

    def idle(self) -> None:
        """Called when the queue is empty: flush time-based work (file rotation)."""
        ...

    def close(self) -> None: ...
