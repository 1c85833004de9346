"""What the HTTP benchmarks share: a Kirana in a subprocess on a free port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerUnderTest:
    """``kirana serve`` on a fresh data dir, with a write key and an admin token."""

    def __init__(self, prefix: str = "kirana-bench-") -> None:
        self.data = Path(tempfile.mkdtemp(prefix=prefix))
        self.write_key = self.cli("sources", "create", "bench")
        self.admin_token = self.cli("tokens", "create", "bench", "--role", "admin")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                *KIRANA,
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(self.data),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                httpx.get(f"{self.url}/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("kirana serve did not start within 30 s")

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [*KIRANA, *args, "--data-dir", str(self.data)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def run_each_size(script: str, size_flag: str, sizes: list[int], extra: list[str]) -> list[dict]:
    """Run ``script --single`` once per size in its own process (so peak RSS is that size's).

    Prints and returns each run's JSON line.
    """
    import json

    results = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, script, "--single", size_flag, str(size), *extra],
            check=True,
            stdout=subprocess.PIPE,  # the result; progress and errors go to our stderr
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    return results
