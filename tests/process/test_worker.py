"""``kirana serve`` with its consumer worker: kill -9 the worker under load, then count."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_crash import (
    Server,
    cli,
    lake_counts,
    make_batches,
    send_until_stopped,
    wait_caught_up,
)

pytestmark = pytest.mark.slow


def worker_pid(server_pid: int, timeout: float = 60) -> int:
    """The consumer worker: the server's child running multiprocessing's spawn entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = subprocess.run(
            ["pgrep", "-P", str(server_pid), "-f", "multiprocessing.spawn"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("no consumer worker process found")


def test_killed_worker_restarts_and_every_event_lands_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli(data_dir, "sources", "create", "crash")
    token = cli(data_dir, "tokens", "create", "ops", "--role", "admin")
    batches = make_batches(300)
    shards = [batches[k::3] for k in range(3)]
    acked: list[set[int]] = [set() for _ in shards]
    server = Server(data_dir)
    try:
        first = worker_pid(server.proc.pid)
        stop = threading.Event()
        senders = [
            threading.Thread(target=send_until_stopped, args=(server.url, key, shard, a, stop))
            for shard, a in zip(shards, acked, strict=True)
        ]
        for s in senders:
            s.start()
        time.sleep(1.0)
        subprocess.run(["kill", "-9", str(first)], check=True)  # mid-load, mid-batch
        for s in senders:
            s.join()
        second = worker_pid(server.proc.pid)
        assert second != first, "the supervisor must start a new worker"
        wait_caught_up(server.url, token)
        status = httpx.get(
            f"{server.url}/v1/status", headers={"Authorization": f"Bearer {token}"}
        ).json()
        profiles = httpx.get(
            f"{server.url}/v1/profiles/u5", headers={"Authorization": f"Bearer {token}"}
        )
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.output.read_text()
    sent = {
        event["messageId"]
        for shard, a in zip(shards, acked, strict=True)
        for index in a
        for event in shard[index]
    }
    assert len(sent) == 300 * 100  # the API kept accepting while the worker was down
    counts = lake_counts(data_dir)
    assert set(counts) == sent
    assert set(counts.values()) == {1}
    assert all(c["lag_bytes"] == 0 for c in status["consumers"].values())
    assert profiles.status_code == 200
