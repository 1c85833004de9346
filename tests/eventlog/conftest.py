"""Fixtures for the event-log tests: a private JetStream server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.eventlog.nats_server import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-store")
    try:
        yield server
    finally:
        server.stop()
