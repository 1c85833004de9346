"""Crash safety: kill -9 the server under load; every acknowledged event lands once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from kirana.lake.catalog import connect
from tests.conftest import free_port

pytestmark = pytest.mark.slow

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def cli(data_dir: Path, *args: str) -> str:
    return subprocess.run(
        [*KIRANA, *args, "--data-dir", str(data_dir)], check=True, capture_output=True, text=True
    ).stdout.strip()


class Server:
    def __init__(self, data_dir: Path, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "KIRANA_LAKE__LINGER_SECONDS": "0.2"}
        self.output = data_dir.parent / f"server-{self.port}.log"
        # a file, not a pipe: a pipe nobody reads would block the server once full
        self._output_file = open(self.output, "wb")  # noqa: SIM115 - closed in stop()/kill9()
        self.proc = subprocess.Popen(
            [
                *KIRANA,
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
                *(extra or []),
            ],
            env=env,
            stdout=self._output_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.output.read_text()}")
            time.sleep(0.1)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._output_file.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self._output_file.close()


def make_batches(n: int, size: int = 100) -> list[list[dict]]:
    return [
        [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": f"u{(b * size + i) % 97}",
                "messageId": str(uuid.uuid4()),
                "properties": {"batch": b, "i": i},
            }
            for i in range(size)
        ]
        for b in range(n)
    ]


def send_until_stopped(
    url: str, key: str, batches: list[list[dict]], acked: set[int], stop: threading.Event
) -> None:
    with httpx.Client(base_url=url, auth=(key, ""), timeout=10) as http:
        for index, batch in enumerate(batches):
            if stop.is_set() or index in acked:
                continue
            try:
                response = http.post("/v1/batch", json={"batch": batch})
            except httpx.TransportError:
                return  # the server died under us: this batch was never acknowledged
            if response.status_code == 200:
                acked.add(index)


def lake_counts(data_dir: Path) -> dict[str, int]:
    return dict(
        connect(data_dir / "lake")
        .sql("SELECT message_id, count(*) FROM events GROUP BY 1")
        .fetchall()
    )


def wait_caught_up(url: str, token: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"}).json()
        if all(c["lag_bytes"] == 0 for c in status["consumers"].values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"consumers did not catch up: {status}")


def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli(data_dir, "sources", "create", "crash")
    token = cli(data_dir, "tokens", "create", "ops", "--role", "admin")
    batches = make_batches(400)
    shards = [batches[k::4] for k in range(4)]  # four concurrent clients
    per_sender: list[set[int]] = [set() for _ in shards]

    server = Server(data_dir)
    stop = threading.Event()
    senders = [
        threading.Thread(target=send_until_stopped, args=(server.url, key, shard, acked, stop))
        for shard, acked in zip(shards, per_sender, strict=True)
    ]
    for s in senders:
        s.start()
    while sum(len(a) for a in per_sender) < 100:  # well into the load, lake loader busy
        time.sleep(0.01)
    server.kill9()
    for s in senders:
        s.join()
    acked_ids = {
        e["messageId"]
        for shard, acked in zip(shards, per_sender, strict=True)
        for i in acked
        for e in shard[i]
    }
    assert acked_ids, "nothing was acknowledged before the kill"

    # restart; clients retry everything they did not see acknowledged
    server = Server(data_dir)
    try:
        for shard, acked in zip(shards, per_sender, strict=True):
            send_until_stopped(server.url, key, shard, acked, threading.Event())
        wait_caught_up(server.url, token)
        counts = lake_counts(data_dir)
    finally:
        server.stop()
    assert acked_ids <= set(counts), "an acknowledged event is missing from the lake"
    assert set(counts.values()) == {1}, "an event landed twice"
    assert len(counts) == 400 * 100
