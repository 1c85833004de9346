"""Console fixtures: a real Kirana (tests/conftest.py) with demo-like data, and signed-in
HTTP clients for an admin and a viewer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from kirana.config import load_settings
from tests.conftest import RunningKirana, _running
from tests.console.seed import Seeded, seed


def sign_in(url: str, token: str) -> httpx.Client:
    """A client holding a console session (the cookie the login form sets)."""
    client = httpx.Client(base_url=url, timeout=60)
    answer = client.post("/console/login", data={"token": token, "next": "/console"})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/console/profiles")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningKirana, Seeded]]:
    """One Kirana with data per test module (seeding takes seconds): tests that change
    something change what no other test reads (their own source, user 2, a new token)."""
    settings = load_settings(
        tmp_path_factory.mktemp("console") / "data", lake={"linger_seconds": 0.2}
    )
    for kirana in _running(settings, "all"):
        data = seed(kirana.platform, kirana.url, kirana.write_key)
        try:
            yield kirana, data
        finally:
            data.receiver.close()


@pytest.fixture
def admin(seeded: tuple[RunningKirana, Seeded]) -> Iterator[httpx.Client]:
    kirana, _ = seeded
    client = sign_in(kirana.url, kirana.admin_token)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def viewer(seeded: tuple[RunningKirana, Seeded]) -> Iterator[httpx.Client]:
    kirana, _ = seeded
    client = sign_in(kirana.url, kirana.viewer_token)
    try:
        yield client
    finally:
        client.close()
