"""Garbage-collector settings for the API processes: no full pass over long-lived objects.

A full (generation 2) pass visits every tracked object that is not frozen. In an API process
those are the personalise caches (resolved profiles, ranking plans, arms, statistics): a few
tens of thousands of objects that take 35-70 ms to visit on this hardware (measured: 60k
objects, 40 ms, and the same again on an immediate second pass), all that time holding the
GIL, so every request in flight waits. With two API processes at 1,000 requests/s a full
pass came about every 30 s in each, and each one put ~35 requests over 10 ms: on their own
enough to take p99 past the 10 ms target in a 60-second run.

The requests make almost no cyclic garbage (measured: 22 objects in one full pass after
~15,000 requests; everything else is freed by reference counting as soon as it is dropped,
frozen or not), so every ``FREEZE_EVERY_SECONDS`` the young generations are collected (at
most ~7,000 objects at these thresholds: 0.13 ms median, 0.17 ms max on the benchmark
machine) and what survives is frozen: moved out of the collector's view, where a full
pass never visits it again. A full
pass then only sees what reached the old generation since the last freeze. The price: a
cycle that becomes garbage after it was frozen, or after it reached the old generation and
before the next freeze, is never collected. How much that keeps over days of serving was
not measured (the benchmark runs are minutes long).
"""

from __future__ import annotations

import gc
import threading

#: how often survivors of the young generations are frozen
FREEZE_EVERY_SECONDS = 5.0


def tune_for_serving(stop: threading.Event | None = None) -> threading.Thread:
    """Freeze what startup built, collect young generations as usual, and keep freezing
    survivors every ``FREEZE_EVERY_SECONDS`` from a daemon thread (until ``stop`` is set)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)
    stop = stop or threading.Event()

    def keep_freezing() -> None:
        while not stop.wait(FREEZE_EVERY_SECONDS):
            gc.collect(1)  # young garbage cycles are freed, not frozen for good
            gc.freeze()  # a list splice under the GIL: no pause

    thread = threading.Thread(target=keep_freezing, name="gc-freeze", daemon=True)
    thread.start()
    return thread
