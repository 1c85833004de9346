"""Why a delivery failed, and whether trying again can help.

::

    DeliveryError            a batch (or one record of it) was not delivered
    ├── RetryableError       transient: timeouts, 5xx, connection refused
    │   └── Throttled        the destination asked us to slow down (429)
    └── PermanentError       the record itself is bad: 4xx, constraint, no recipient

The split alone decides what the deliverer does: retry with backoff, or send the
record to the dead-letter store at once. ``index`` says which record failed
when the destination knows (earlier records of the batch were delivered);
``None`` means the batch as a whole failed and nothing of it was applied.
"""

from __future__ import annotations


class DeliveryError(Exception):
    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class RetryableError(DeliveryError):
    """Try again later; ``retry_after`` (seconds) if the destination said when.

    ``outage`` marks failures that concern the destination as a whole (cannot
    connect, 502/503/504): the deliverer then pauses the destination instead of
    trying other records at once.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        retry_after: float | None = None,
        outage: bool = False,
    ) -> None:
        super().__init__(message, index=index)
        self.retry_after = retry_after
        self.outage = outage


class Throttled(RetryableError):
    """Rate limited by the destination: waits, but does not count as an attempt."""


class PermanentError(DeliveryError):
    """Retrying cannot help: the record goes to the dead-letter store."""


def classify_http(status: int, body: str, retry_after: str | None) -> DeliveryError | None:
    """The error an HTTP answer means (None for success)."""
    if 200 <= status < 300:
        return None
    detail = f"HTTP {status}: {body[:300]}"
    if status == 429:
        return Throttled(detail, retry_after=parse_retry_after(retry_after))
    if status in (408, 409, 425) or status >= 500:
        return RetryableError(
            detail, retry_after=parse_retry_after(retry_after), outage=status in (502, 503, 504)
        )
    return PermanentError(detail)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
