"""The consumer worker: a child process of ``kirana serve`` that runs every consumer.

Why a process and not threads: the consumers (identity resolution, Arrow
conversion for the lake, audiences) are CPU-bound Python. In the API's
process they took the interpreter lock away from request handling — ingest
peaked near 45k events/s with a p99 above 100 ms. In their own process they
use the second core and the API answers from the first (docs/benchmarks.md).

The worker reads the log through ``runtime.open_log_reader`` (the segment files'
:class:`~kirana.eventlog.reader.FileLogReader`, or a JetStream connection of its own)
and asks the API process (the log's only writer) to append the events it derives.
It exits when the API process closes the pipe or dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from kirana.config import Settings
from kirana.process.channel import Channel, ChannelClosed

log = logging.getLogger(__name__)


def run_worker(settings_json: str, conn: Connection, log_level: int) -> None:
    """Entry point of the worker process (spawned, so it imports fresh)."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s [worker] %(name)s: %(message)s"
    )
    # the API process decides when we stop (a signal to the whole process group, as
    # systemd or Ctrl-C sends, reaches the API, which then stops us cleanly)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from kirana.runtime import Platform
    from kirana.serving.decision_log import table_writer

    settings = Settings.model_validate_json(settings_json)
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    stopping = threading.Event()
    handlers: dict[str, Any] = {"stop": lambda _: stopping.set(), "ping": lambda _: os.getpid()}
    channel = Channel(conn, handlers, name="worker")
    threading.Thread(
        target=lambda: (channel.wait_closed(), stopping.set()), name="parent-watch", daemon=True
    ).start()
    platform = Platform.open(settings, role="worker", channel=channel)
    if stopping.is_set():  # asked to stop while starting
        platform.close()
        channel.close()
        return
    decisions = table_writer(settings.lake_dir)  # the API processes spool, we append
    handlers.update(
        decisions=decisions.append_spooled,
        status=lambda _: platform.consumer_status(),
        forget=lambda _: platform.forget_identities(),
        refresh=lambda full: platform.refresh_segments(bool(full)),
    )
    platform.start()
    log.info("consumer worker %d running %s", os.getpid(), ", ".join(platform.consumers))
    try:
        channel.call("ready", os.getpid())
    except ChannelClosed:  # the API process went away while we started
        stopping.set()
    stopping.wait()
    log.info("consumer worker %d stopping", os.getpid())
    platform.close()
    channel.close()
