"""The demo ends with every part working: model lists, content, an experiment.

Loads a 20-user demo with ``kirana demo`` (embedded server), then starts ``kirana serve
--demo`` on the same data dir (the second run must fill in nothing twice and fail nowhere)
and asks the real personalise API for a demo user's home feed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from kirana.demo.showcase import EXPERIMENT_KEY, demo_content
from kirana.serving.store import ServingStore, serving_path
from tests.conftest import free_port

pytestmark = pytest.mark.slow

KIRANA = [sys.executable, "-m", "kirana.cli.main"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(data: Path, *args: str) -> str:
    return subprocess.run(
        [*KIRANA, *args, "--data-dir", str(data)],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    ).stdout


class Serve:
    """``kirana serve --demo`` with its output collected line by line."""

    def __init__(self, data: Path, port: int) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*KIRANA, "serve", "--demo", "--port", str(port), "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the output:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_demo_serves_lists_content_and_an_experiment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = cli(data, "demo", "--users", "20")
    assert "FAILED" not in first, first
    assert "experiment: home-ranking" in first and "is running" in first, first
    user = re.search(r"userId=([^'&\s]+)", first)
    assert user is not None, first
    user_id = user.group(1)

    serving = ServingStore(serving_path(data / "state"))
    try:
        published = serving.versions()
        for widget in ("buy_again", "recommended_for_you", "frequently_bought_together"):
            assert published[widget][1] > 0, widget
        assert serving.recommendations("buy_again", user_id)
        assert serving.recommendations("recommended_for_you", user_id)
        assert serving.recommendations("popular", "*")
    finally:
        serving.close()
    computed = cli(data, "profile", user_id, "--events", "0")
    assert '"p_alive"' in computed  # buying-pattern traits reached the profile

    port = free_port()
    server = Serve(data, port)
    try:
        server.wait_for("next, try:")
        output = "\n".join(server.lines)
        assert "FAILED" not in output, output
        assert "kept the current output of buy_again" in output, output
        assert "0 records created, 0 updated" in output, output  # nothing duplicated
        key = re.search(r"curl -u (\S+):", output)
        assert key is not None, output

        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/personalize",
            params={"placement": "home_feed", "userId": user_id},
            auth=(key.group(1), ""),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        home = next(p for p in demo_content()["placements"] if p["key"] == "home_feed")
        expected = {w if isinstance(w, str) else w["widget"] for w in home["widgets"]}
        served = {w["key"]: w for w in body["widgets"]}
        assert set(served) == expected, body
        assert all(w["items"] for w in served.values()), body
        assert [a["experiment_id"] for a in body["experiments"]] == [EXPERIMENT_KEY]
        assert body["experiments"][0]["variation_id"] in ("bandit", "popular")
    finally:
        server.stop()

    listed = cli(data, "experiments", "list")
    assert re.search(rf"^{EXPERIMENT_KEY}\trunning\t", listed, re.M), listed
