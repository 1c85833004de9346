"""Webhook: JSON batches POSTed to a URL, signed, one idempotency key per record.

Body: ``{"batch": [{"idempotency_key", "action", "key", "collection", "data"}, …],
"sent_at": <unix seconds>}``. Headers: ``X-Kirana-Timestamp`` and
``X-Kirana-Signature`` (see :mod:`kirana.destinations.signing`). A 2xx means the
whole batch was accepted; 429 and 5xx are retried (``Retry-After`` honoured);
other 4xx are permanent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
import msgspec

from kirana.destinations.config import WebhookSettings
from kirana.destinations.errors import RetryableError, classify_http
from kirana.destinations.records import OutboundRecord
from kirana.destinations.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

_encode = msgspec.json.Encoder().encode


class WebhookDestination:
    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._client = httpx.Client(timeout=settings.timeout_seconds)

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        now = int(time.time())
        body = _encode({"batch": [r.wire() for r in records], "sent_at": now})
        headers = {
            **self._settings.headers,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(self._settings.secret, now, body),
        }
        try:
            response = self._client.post(self._settings.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}", outage=True) from exc
        error = classify_http(
            response.status_code, response.text, response.headers.get("Retry-After")
        )
        if error is not None:
            raise error

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self._client.close()
