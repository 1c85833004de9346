"""Shared fixtures: a real Kirana on a real port, over a temporary data dir."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from kirana.api.app import create_app
from kirana.config import Settings, load_settings
from kirana.lake.catalog import connect
from kirana.runtime import Platform


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningKirana:
    """A Kirana serving HTTP on localhost, with a source and an admin token."""

    url: str
    platform: Platform
    write_key: str
    admin_token: str
    viewer_token: str

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def drain(self) -> None:
        assert self.platform.drain(timeout=60), "consumers did not catch up within 60 s"

    def lake(self, sql: str) -> list[tuple]:
        return connect(self.settings.lake_dir).sql(sql).fetchall()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "data", lake={"linger_seconds": 0.2})


def start_server(platform: Platform) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def kirana(settings: Settings) -> Iterator[RunningKirana]:
    """Everything in this process (consumers as threads): fast, and inspectable."""
    yield from _running(settings, "all")


@pytest.fixture
def kirana_worker(settings: Settings) -> Iterator[RunningKirana]:
    """As ``kirana serve`` runs: the API here, the consumers in a worker process."""
    yield from _running(settings, "api")


@pytest.fixture(params=["all", "api"], ids=["threads", "worker-process"])
def kirana_any(request: pytest.FixtureRequest, settings: Settings) -> Iterator[RunningKirana]:
    """Both arrangements, for behaviour that must not depend on where consumers run."""
    yield from _running(settings, request.param)


def _running(settings: Settings, role: str) -> Iterator[RunningKirana]:
    platform = Platform.open(settings, role=role)
    _, write_key = platform.store.create_source("test")
    _, admin = platform.store.create_token("admin", "admin")
    _, viewer = platform.store.create_token("viewer", "viewer")
    server, thread, url = start_server(platform)
    try:
        yield RunningKirana(url, platform, write_key, admin, viewer)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
