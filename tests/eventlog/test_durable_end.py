"""The END file: readers see whole published values, even from a writer killed mid-publish."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kirana.eventlog.durable_end import _PAIR, DurableEnd


def test_readers_see_what_the_writer_published(tmp_path: Path) -> None:
    writer = DurableEnd(tmp_path, writable=True)
    reader = DurableEnd(tmp_path, writable=False)
    writer.publish(4096, 0)
    assert reader.read() == (4096, 0)
    writer.publish(8192, 4096)
    assert reader.read() == (8192, 4096)
    writer.close()
    reader.close()


def test_a_writer_killed_between_its_two_stores_does_not_hang_readers(tmp_path: Path) -> None:
    writer = DurableEnd(tmp_path, writable=True)
    writer.publish(1000, 0)
    _PAIR.pack_into(writer._map, 0, 2000, 0)  # first copy updated, then the writer died
    reader = DurableEnd(tmp_path, writable=False)
    started = time.monotonic()
    assert reader.read() == (1000, 0)  # the smaller end: durable either way
    assert time.monotonic() - started < 5
    writer.close()
    reader.close()


def test_concurrent_publishes_never_show_a_value_that_was_not_published(tmp_path: Path) -> None:
    writer = DurableEnd(tmp_path, writable=True)
    reader = DurableEnd(tmp_path, writable=False)
    writer.publish(0, 0)
    stop = threading.Event()

    def publish() -> None:
        end = 0
        while not stop.is_set():
            end += 4096
            writer.publish(end, end // 2)

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        last = 0
        for _ in range(20_000):
            end, base = reader.read()
            assert end % 4096 == 0 and base == end // 2  # a pair that was published
            assert end >= last  # never backwards
            last = end
    finally:
        stop.set()
        thread.join()
    writer.close()
    reader.close()
