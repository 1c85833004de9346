"""The hot-path dispatch answers exactly as the FastAPI routes it stands in front of.

``HotPaths`` serves ``/v1/personalize``, the tracking endpoints and ``/health`` without
FastAPI's router; the same paths under a ``root_path`` go through FastAPI (the middleware
steps aside there), so one app can be asked both ways and the answers compared.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kirana.api.app import create_app
from kirana.api.hot_paths import HotPaths
from kirana.config import load_settings
from kirana.runtime import Platform
from tests.serving.helpers import item


async def _call(
    app, method: str, path: str, query: str = "", headers=(), body: bytes = b"", root_path: str = ""
) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "query_string": query.encode(),
        "root_path": root_path,
        "headers": [(b"host", b"test"), *[(k.encode(), v.encode()) for k, v in headers]],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    payload = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], dict(start["headers"]), payload


@pytest.fixture
def platform(tmp_path: Path):
    settings = load_settings(tmp_path / "data", automation={"refresh_seconds": 0.1})
    p = Platform.open(settings, role="all")
    yield p
    p.close()


def test_hot_paths_answer_as_the_fastapi_routes(platform: Platform) -> None:
    app = create_app(platform, manage_lifecycle=False)
    assert any(m.cls is HotPaths for m in app.user_middleware)
    _, key = platform.store.create_source("web")
    _, admin = platform.store.create_token("admin", "admin")
    content = {
        "widgets": [
            {"key": "hero", "kind": "banner", "max_items": 2, "items": [item("a"), item("b")]}
        ],
        "placements": [{"key": "home_feed", "max_widgets": 1, "widgets": ["hero"]}],
    }
    cases = [
        ("GET", "/health", "", [], b""),
        ("GET", "/v1/personalize", "placement=home_feed&userId=u1", [("x-write-key", key)], b""),
        ("GET", "/v1/personalize", "placement=home_feed", [("x-write-key", key)], b""),
        (
            "GET",
            "/v1/personalize",
            "placement=home_feed&userId=u1&limit=0",
            [("x-write-key", key)],
            b"",
        ),
        ("GET", "/v1/personalize", "placement=nope&userId=u1", [("x-write-key", key)], b""),
        ("GET", "/v1/personalize", "placement=home_feed&userId=u1", [], b""),
        (
            "GET",
            "/v1/personalize",
            "placement=home_feed&userId=u1",
            [("authorization", "Bearer wrong")],
            b"",
        ),
        ("POST", "/v1/track", "", [("x-write-key", key)], b"{not json"),
        ("POST", "/v1/track", "", [("x-write-key", "unknown")], b"{}"),
        (
            "POST",
            "/v1/track",
            "",
            [("x-write-key", key)],
            json.dumps({"event": "E", "userId": "u1", "messageId": "m1"}).encode(),
        ),
        (
            "POST",
            "/v1/batch",
            "",
            [("x-write-key", key)],
            json.dumps(
                {
                    "batch": [
                        {"type": "track", "event": "E", "userId": "u1", "messageId": "m2"},
                        {"type": "track", "messageId": "m3"},
                    ]
                }
            ).encode(),
        ),
    ]

    async def run() -> None:
        status, _, _ = await _call(
            app,
            "POST",
            "/v1/content/import",
            headers=[("authorization", f"Bearer {admin}"), ("content-type", "application/json")],
            body=json.dumps(content).encode(),
            root_path="",
        )
        assert status == 200
        for method, path, query, headers, body in cases:
            hot = await _call(app, method, path, query, headers, body)
            routed = await _call(app, method, path, query, headers, body, root_path="/mounted")
            assert hot[0] == routed[0], (path, query, hot, routed)
            assert hot[1].get(b"content-type") == routed[1].get(b"content-type")
            a, b = json.loads(hot[2]), json.loads(routed[2])
            if path == "/v1/personalize" and hot[0] == 200:  # ids and tracking tokens differ
                assert [w["key"] for w in a["widgets"]] == [w["key"] for w in b["widgets"]]
                assert a["placement"] == b["placement"] == "home_feed"
            else:
                assert a == b, (path, query)

    asyncio.run(run())


def test_openapi_still_documents_the_hot_paths(platform: Platform) -> None:
    paths = create_app(platform, manage_lifecycle=False).openapi()["paths"]
    assert {"/v1/personalize", "/v1/track", "/v1/batch", "/health"} <= set(paths)
    params = {p["name"] for p in paths["/v1/personalize"]["get"]["parameters"]}
    assert {"placement", "userId", "anonymousId", "limit", "itemId"} <= params
