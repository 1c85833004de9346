"""Under ``kirana serve`` (deliverers in the worker process): kill -9 mid-delivery, restart,
and every acknowledged event still reaches the webhook, in order per user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.destinations.receivers import WebhookReceiver

pytestmark = pytest.mark.slow

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def cli(data: Path, *args: str) -> str:
    return subprocess.run(
        [*KIRANA, *args, "--data-dir", str(data)], check=True, capture_output=True, text=True
    ).stdout.strip()


def serve(data: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*KIRANA, "serve", "--port", str(port), "--data-dir", str(data), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill -9 takes the worker too
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("kirana serve did not start")


def test_kill_9_during_delivery_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_key = cli(data, "sources", "create", "web")
    token = cli(data, "tokens", "create", "ops", "--role", "admin")
    receiver = WebhookReceiver()

    def slow_ok(batch):
        time.sleep(0.05)
        return 200, {}

    receiver.respond = slow_ok
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(data, port)
    try:
        admin = {"Authorization": f"Bearer {token}"}
        hook = {
            "name": "hook",
            "kind": "webhook",
            "settings": {"url": receiver.url, "secret": "s" * 20},
            "routes": [{"events": ["Product Viewed"]}],
            "batch_size": 5,
        }
        assert httpx.post(f"{url}/v1/destinations", json=hook, headers=admin).status_code == 201
        events = [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": f"u{i % 3}",
                "messageId": f"m-{i:04d}",
                "properties": {"n": i},
            }
            for i in range(150)
        ]
        sent = httpx.post(f"{url}/v1/batch", json={"batch": events}, auth=(write_key, ""))
        assert sent.status_code == 200  # acknowledged: must all arrive
        deadline = time.monotonic() + 60
        while len(receiver.accepted) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0 < len(receiver.accepted) < 150, "the kill must land mid-delivery"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = serve(data, port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if {r["idempotency_key"] for r in receiver.accepted} >= {
                e["messageId"] for e in events
            }:
                break
            time.sleep(0.2)
        keys = [r["idempotency_key"] for r in receiver.accepted]
        assert set(keys) == {e["messageId"] for e in events}
        assert len(keys) - len(set(keys)) <= 5  # at most the batch in flight came twice
        first_seen: dict[str, list[int]] = defaultdict(list)
        seen: set[str] = set()
        for record in receiver.accepted:
            if record["idempotency_key"] not in seen:
                seen.add(record["idempotency_key"])
                first_seen[record["key"]].append(record["data"]["properties"]["n"])
        for user, order in first_seen.items():
            assert order == sorted(order), f"{user} out of order"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        receiver.close()
