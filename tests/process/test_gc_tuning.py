"""The API processes' collector settings: objects that outlive the young generations end up
frozen, where a full pass no longer visits them; young cyclic garbage is still collected."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from kirana.process import gc_tuning


def in_collector_view(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_survivors_are_frozen_and_young_cycles_still_collected(monkeypatch) -> None:
    monkeypatch.setattr(gc_tuning, "FREEZE_EVERY_SECONDS", 0.05)
    thresholds = gc.get_threshold()
    stop = threading.Event()
    thread = gc_tuning.tune_for_serving(stop)
    try:
        cache = {f"user-{i}": [i] for i in range(1_000)}  # what a cache builds after startup
        deadline = time.monotonic() + 10
        while in_collector_view(cache) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not in_collector_view(cache)
        assert not in_collector_view(cache["user-7"])
        stop.set()  # (a freeze between the two lines below would keep the cycle)
        thread.join(5)

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only the collector can free
        gone = weakref.ref(a)
        del a, b
        gc.collect(0)
        assert gone() is None
        assert gc.get_threshold()[0] > 0  # young passes still run by themselves
    finally:
        stop.set()
        thread.join(5)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert not thread.is_alive()


def test_a_young_cycle_is_collected_not_frozen_while_the_thread_runs(monkeypatch) -> None:
    """Garbage made between two freezes is freed by the thread's young collection: a
    freeze of it would keep it for good (a full ``gc.collect()`` skips frozen objects)."""
    monkeypatch.setattr(gc_tuning, "FREEZE_EVERY_SECONDS", 0.02)
    thresholds = gc.get_threshold()
    stop = threading.Event()
    thread = gc_tuning.tune_for_serving(stop)
    try:

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        time.sleep(0.3)  # many freezes
        gc.collect()
        assert gone() is None
    finally:
        stop.set()
        thread.join(5)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
