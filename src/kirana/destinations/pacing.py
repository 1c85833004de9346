"""How fast and how often to try (pure: the clock and randomness are passed in).

Backoff doubles per attempt up to a cap, with "equal jitter" (half fixed,
half random) so that many records failing together do not retry in lockstep
while a delay never collapses to zero. The token bucket caps records per
second with a burst allowance.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based)."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rand() * ceiling / 2


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up (rate 0: unlimited)."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._at = now

    def wait_time(self, n: int, now: float) -> float:
        """Seconds until ``n`` tokens are available (0: take them now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        need = min(float(n), self.capacity) - self._tokens
        return 0.0 if need <= 0 else need / self.rate

    def take(self, n: int, now: float) -> None:
        if self.rate <= 0:
            return
        self._refill(now)
        self._tokens -= min(float(n), self.capacity)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
