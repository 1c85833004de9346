"""Keeps one deliverer thread per configured destination in this process.

Runs as a scheduled job: every tick it compares the stored configurations with
the running deliverers — starting new ones, restarting changed ones, stopping
removed ones — so a destination created through the API in one process is
served by the worker process within a second.
"""

from __future__ import annotations

import logging
import time

from kirana.destinations.deliverer import Deliverer
from kirana.destinations.registry import Emit, build
from kirana.destinations.secrets import secret_values
from kirana.destinations.store import DeliveryStore
from kirana.redaction import remember, scrub

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 600.0


class Supervisor:
    def __init__(self, store: DeliveryStore, emit: Emit | None = None) -> None:
        self._store = store
        self._emit = emit
        self._running: dict[str, tuple[str, Deliverer]] = {}
        self._broken: dict[str, str] = {}
        self._pruned_at = time.monotonic()

    def tick(self) -> None:
        configs = {c.name: c for c in self._store.destinations()}
        for name, (fingerprint, deliverer) in list(self._running.items()):
            if name not in configs or configs[name].model_dump_json() != fingerprint:
                deliverer.stop()
                del self._running[name]
        for name, config in configs.items():
            fingerprint = config.model_dump_json()
            if name in self._running or self._broken.get(name) == fingerprint:
                continue
            remember(secret_values(config.settings))  # so log lines are scrubbed of them
            try:
                destination = build(config, self._emit)
            except Exception as exc:  # reported in health; retried when the config changes
                self._broken[name] = fingerprint
                message = f"cannot start: {type(exc).__name__}: {exc}"
                self._store.note_error(name, scrub(message, secret_values(config.settings)))
                log.exception("destination %s cannot start", name)
                continue
            self._broken.pop(name, None)
            deliverer = Deliverer(self._store, config, destination)
            deliverer.start()
            self._running[name] = (fingerprint, deliverer)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            self._store.prune()

    def running(self) -> list[str]:
        return sorted(self._running)

    def stop(self) -> None:
        for _, deliverer in self._running.values():
            deliverer.stop()
        self._running.clear()
