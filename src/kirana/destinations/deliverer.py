"""Drains one destination's queue: pick, deliver, record the outcome, back off.

One deliverer per destination holds a lease in the delivery store, so however
many processes run deliverers, a destination sees one sender and order per
user holds. What happens on failure:

* retryable (timeouts, 5xx): the records' attempts grow and each waits an
  exponential backoff with jitter. When the failure looks destination-wide (no
  connection, 502/503/504, or a batch of first tries failing) the destination
  as a whole also pauses, for a backoff that grows with consecutive failures
  and resets on the first success, so an outage is not hammered; a record
  that fails again on its own only delays itself and its user's later
  records. After ``max_attempts`` a record is dead-lettered;
* throttled (429): wait ``Retry-After``; attempts do not grow;
* permanent (4xx, a bad record): a single record is dead-lettered at once; a
  failed batch is retried record by record to find the culprit.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from kirana.destinations.config import DestinationConfig
from kirana.destinations.errors import DeliveryError, PermanentError, Throttled
from kirana.destinations.ordering import next_due, pick_batch
from kirana.destinations.pacing import TokenBucket, backoff_delay
from kirana.destinations.protocol import Destination
from kirana.destinations.records import OutboundRecord
from kirana.destinations.secrets import secret_values
from kirana.destinations.store import DeliveryStore
from kirana.redaction import scrub

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
IDLE_POLL = 0.2
SCAN_FACTOR = 20


class Deliverer:
    """The delivery loop for one destination (``step`` is one pass; ``run`` loops)."""

    def __init__(
        self,
        store: DeliveryStore,
        config: DestinationConfig,
        destination: Destination,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.destination = destination
        self._clock = clock
        self._owner = f"{uuid.uuid4().hex[:12]}"
        self._lease_until = 0.0
        self._failures = 0
        self._paused_until = 0.0
        capacity = config.burst or config.batch_size
        self._bucket = TokenBucket(config.rate_limit, capacity, clock())
        # a batch never needs more tokens than the bucket can hold
        self._limit = min(config.batch_size, capacity) if config.rate_limit else config.batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run, name=f"deliver-{self.config.name}", daemon=True
        )
        self._thread.start()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                pause = self.step()
            except Exception:  # a store hiccup: keep the thread alive, try again soon
                log.exception("deliverer %s failed; retrying", self.config.name)
                pause = 1.0
            if pause > 0:
                self._stop.wait(pause)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            self.store.release_lease(self.config.name, self._owner)
        finally:
            self.destination.close()

    def step(self) -> float:
        """Deliver one batch if one is due; return how long to wait before the next pass."""
        now = self._clock()
        if now < self._paused_until:
            return min(self._paused_until - now, 1.0)
        if not self._hold_lease(now):
            return 1.0
        name = self.config.name
        scan = self.config.batch_size * 2 + 100
        candidates = self.store.candidates(name, scan)
        if not candidates:
            self.destination.idle()
            return IDLE_POLL
        ids = pick_batch(candidates, now, self._limit)
        if not ids and len(candidates) == scan:  # the head is all waiting users: look further
            candidates = self.store.candidates(name, scan * SCAN_FACTOR)
            ids = pick_batch(candidates, now, self._limit)
        if not ids:  # every user's first record is backing off
            due = next_due(candidates)
            assert due is not None
            return max(0.01, min(due - now, 1.0))
        wait = self._bucket.wait_time(len(ids), now)
        if wait > 0:
            return wait
        self._bucket.take(len(ids), now)
        loaded = self.store.load(ids)
        self._deliver(loaded)
        return 0.0

    def _hold_lease(self, now: float) -> bool:
        if now < self._lease_until - LEASE_SECONDS / 2:
            return True
        if self.store.acquire_lease(self.config.name, self._owner, LEASE_SECONDS):
            self._lease_until = now + LEASE_SECONDS
            return True
        return False

    # -- outcomes ----------------------------------------------------------------------

    def _deliver(self, loaded: Sequence[tuple[int, OutboundRecord]]) -> None:
        ids = [i for i, _ in loaded]
        try:
            self.destination.deliver([r for _, r in loaded])
        except DeliveryError as exc:
            self._failed(loaded, exc)
            return
        self.store.mark_delivered(self.config.name, ids)
        self._failures = 0

    def _failed(self, loaded: Sequence[tuple[int, OutboundRecord]], exc: DeliveryError) -> None:
        name = self.config.name
        if exc.index is not None:
            done = [i for i, _ in loaded[: exc.index]]
            if done:
                self.store.mark_delivered(name, done)
            loaded = [loaded[exc.index]]
        if isinstance(exc, PermanentError) and len(loaded) > 1:
            self._isolate(loaded)
            return
        self._record_failure(loaded, exc)

    def _record_failure(
        self, loaded: Sequence[tuple[int, OutboundRecord]], exc: DeliveryError
    ) -> None:
        now = self._clock()
        name = self.config.name
        ids = [i for i, _ in loaded]
        # drivers echo connection strings and servers echo headers: never store a credential
        message = scrub(f"{type(exc).__name__}: {exc}", secret_values(self.config.settings))
        if isinstance(exc, PermanentError):
            dead = self.store.mark_failed(
                name, ids, message, retry_at=None, counts=True, max_attempts=1
            )
            log.warning("destination %s: %d record(s) dead-lettered: %s", name, dead, message)
            return
        retry_after = getattr(exc, "retry_after", None)
        throttled = isinstance(exc, Throttled)
        attempt = max(r.attempts for _, r in loaded) + 1
        delay = (
            retry_after
            if retry_after is not None
            else backoff_delay(
                attempt, self.config.backoff_seconds, self.config.backoff_max_seconds
            )
        )
        dead = self.store.mark_failed(
            name,
            ids,
            message,
            retry_at=now + delay,
            counts=not throttled,
            max_attempts=self.config.max_attempts,
        )
        if dead:
            log.warning("destination %s: %d record(s) out of attempts: %s", name, dead, message)
        fresh = any(r.attempts == 0 for _, r in loaded)
        if not (throttled or getattr(exc, "outage", False) or fresh):
            return  # a retried record failed again: only it backs off; others go on
        if not throttled:
            self._failures += 1
        pause = (
            retry_after
            if retry_after is not None
            else backoff_delay(
                self._failures, self.config.backoff_seconds, self.config.backoff_max_seconds
            )
        )
        self._paused_until = now + pause

    def _isolate(self, loaded: Sequence[tuple[int, OutboundRecord]]) -> None:
        """Deliver a rejected batch one record at a time, keeping order per user."""
        waiting: set[str] = set()
        for item in loaded:
            record = item[1]
            if record.user in waiting:
                continue  # its user's earlier record is backing off; this one stays queued
            try:
                self.destination.deliver([record])
            except DeliveryError as exc:
                self._record_failure([item], exc)
                if not isinstance(exc, PermanentError):
                    waiting.add(record.user)
                    if self._clock() < self._paused_until:
                        return
                continue
            self.store.mark_delivered(self.config.name, [item[0]])
