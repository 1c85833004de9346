"""``X-Kirana-Signature``: HMAC-SHA256 over ``<timestamp>.<body>`` with a shared secret.

The timestamp is signed too, so a receiver that rejects old timestamps is safe
from replayed captures; comparing in constant time keeps the secret from
leaking through timing.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Kirana-Signature"
TIMESTAMP_HEADER = "X-Kirana-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value: ``v1=<hex digest>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance: float = 300
) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)
