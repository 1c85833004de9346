"""Destinations: routing events, audiences and sync rows to downstream systems, reliably.

Public surface: :class:`Destination` (the backend protocol), :class:`OutboundRecord`,
the error classes, :class:`DeliveryStore` and :class:`Deliverer`.
"""

from kirana.destinations.deliverer import Deliverer
from kirana.destinations.errors import (
    DeliveryError,
    PermanentError,
    RetryableError,
    Throttled,
)
from kirana.destinations.protocol import Destination
from kirana.destinations.records import OutboundRecord
from kirana.destinations.store import DeliveryStore

__all__ = [
    "Deliverer",
    "DeliveryError",
    "DeliveryStore",
    "Destination",
    "OutboundRecord",
    "PermanentError",
    "RetryableError",
    "Throttled",
]
