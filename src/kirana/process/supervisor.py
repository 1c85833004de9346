"""The API process's side of the consumer worker: start, relay, restart, stop."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

from kirana.process.channel import Channel, ChannelClosed

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Keeps one child process running while the platform runs: the consumer worker, or
    (with ``target=run_replica``) one extra API process.

    ``handlers`` are what the child may ask of this process (appending
    derived events to the log). A crashed worker is restarted with backoff;
    its consumers resume from their durable positions, so nothing is lost or
    applied twice. ``target`` is called in the child as
    ``target(settings_json, conn, log_level, *args)``.
    """

    def __init__(
        self,
        settings_json: str,
        handlers: dict[str, Callable[[Any], Any]],
        *,
        target: Callable[..., None] | None = None,
        args: tuple = (),
        label: str = "consumer worker",
        process_name: str = "kirana-worker",
    ) -> None:
        self._settings_json = settings_json
        self._handlers = {**handlers, "ready": self._on_ready}
        self._target = target
        self._args = args
        self.label = label
        self._process_name = process_name
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._channel: Channel | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self.restarts = 0
        self.last_exit: int | None = None
        self.spawn_failures = 0
        self.last_spawn_error: str | None = None
        self._thread = threading.Thread(
            target=self._supervise, name="worker-supervisor", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        from kirana.process.worker import run_worker

        process = self._context.Process(
            target=self._target or run_worker,
            args=(
                self._settings_json,
                child,
                logging.getLogger().getEffectiveLevel(),
                *self._args,
            ),
            name=self._process_name,
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent.close()
            child.close()
            raise
        child.close()
        try:
            channel = Channel(parent, self._handlers, name="api")
        except BaseException:  # no channel, no way to talk to it: do not leave it running
            process.terminate()
            process.join(5)
            parent.close()
            raise
        self._process, self._channel = process, channel

    def _on_ready(self, pid: int) -> None:
        """The worker has opened everything and its consumers run."""
        log.info("%s %d is ready", self.label, pid)
        self._ready.set()

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._spawn()
            except Exception as exc:  # out of memory or pids, say: keep trying, never give up
                self.spawn_failures += 1
                self.last_spawn_error = f"{type(exc).__name__}: {exc}"
                log.exception("could not start the %s; retrying in %.0fs", self.label, backoff)
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
                continue
            self.last_spawn_error = None
            assert self._process is not None
            while not self._stopping.is_set() and self._process.is_alive():
                self._process.join(0.5)
            if self._stopping.is_set():
                return
            self._ready.clear()
            self.last_exit = self._process.exitcode
            self.restarts += 1
            log.error("%s exited with %s; restarting in %.0fs", self.label, self.last_exit, backoff)
            if self._channel is not None:
                self._channel.close()
            if self._stopping.wait(backoff):
                return
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)

    def call(self, kind: str, payload: Any = None, timeout: float | None = 60.0) -> Any:
        """Call the worker, waiting (within ``timeout``) for it to be up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._ready.wait(remaining) or self._channel is None:
                raise ChannelClosed(f"the {self.label} is not running (asked for {kind!r})")
            try:
                return self._channel.call(kind, payload, remaining)
            except ChannelClosed:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)  # restarting: try the new worker

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def stopped(self) -> bool:
        """Asked to stop, and its process is gone (it will not be started again)."""
        return self._stopping.is_set() and not self.alive

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the worker to finish its batch and exit; kill it if it will not."""
        self._stopping.set()
        if self._thread.is_alive():  # no spawn after this: the snapshot below is the last worker
            self._thread.join(10)
        process, channel = self._process, self._channel
        if process is None:
            return
        if channel is not None and process.is_alive():
            with contextlib.suppress(Exception):
                channel.call("stop", timeout=5)
        process.join(timeout)
        if process.is_alive():
            log.error("%s did not stop within %.0fs; terminating it", self.label, timeout)
            process.terminate()
            process.join(5)
        if channel is not None:
            channel.close()
        if self._thread.is_alive():
            self._thread.join(5)
