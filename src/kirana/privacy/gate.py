"""The point from which an erasure is sure no event of the person can still be appended.

The collector judges an event (suppressed or not) and appends it to the log in two steps.
An erasure that adds the person to the suppression list between those steps would miss a
record judged under the old list and appended just after: it would be redacted from
nowhere, and land in the lake after the lake's rows were deleted.

So every judgement (a request's checks *and* its append, until the append is durable) is
held open under the generation of the list it started with, and ``add`` starts a new
generation. :meth:`JudgementGate.wait_before` returns once every judgement of an older
generation has ended: from then on, every record judged under the old list is durable in
the log (where the erasure redacts it), and every later judgement sees the new list. This
is a grace period in the read-copy-update sense; it holds whatever the judgements await in
between (the log's group commit, a thread pool), with no lock held across an ``await``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class JudgementGate:
    """Counts open judgements per suppression-list generation."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._open: dict[int, int] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def advance(self, publish: Callable[[], None]) -> int:
        """Run ``publish`` (which makes the new list visible) and start a new generation,
        atomically with respect to judgements starting; returns the new generation."""
        with self._cond:
            publish()
            self._generation += 1
            return self._generation

    @contextmanager
    def judging(self) -> Iterator[None]:
        """Hold a judgement open until the block ends (its append durable or failed)."""
        with self._cond:
            generation = self._generation
            self._open[generation] = self._open.get(generation, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                left = self._open[generation] - 1
                if left:
                    self._open[generation] = left
                else:
                    del self._open[generation]
                self._cond.notify_all()

    def wait_before(self, generation: int, timeout: float) -> bool:
        """Wait until no judgement older than ``generation`` is open; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(g < generation for g in self._open):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
