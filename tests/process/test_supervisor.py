"""The worker supervisor keeps trying when a worker cannot even be started."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kirana.config import load_settings
from kirana.runtime import Platform


def test_a_failed_spawn_is_retried_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform.open(load_settings(tmp_path / "data"), role="api")
    supervisor = platform.worker
    assert supervisor is not None
    real_spawn = supervisor._spawn
    attempts = 0
    checked = threading.Event()

    def flaky_spawn() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError(11, "Resource temporarily unavailable")
        checked.wait(30)  # hold the retry until the test has read the status
        real_spawn()

    monkeypatch.setattr(supervisor, "_spawn", flaky_spawn)
    platform.start()
    try:
        deadline = time.monotonic() + 30
        while supervisor.spawn_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        down = platform.consumer_status()["worker"]
        assert down["errors"] == 1
        assert "last start failed: BlockingIOError" in down["last_error"]  # OSError(11)
        checked.set()
        status = supervisor.call("status", timeout=90)  # waits until the retry is up
        assert {"lake-loader", "profiles"} <= set(status)
        assert attempts == 2 and supervisor.spawn_failures == 1
        assert supervisor.last_spawn_error is None  # cleared once a worker started
    finally:
        checked.set()
        platform.close()
