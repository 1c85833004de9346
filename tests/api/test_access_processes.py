"""Revocation, rotation and disabling hold at once in every API process
(``kirana serve --api-processes 2``): the second process answers personalise itself, from
the same store, and relays management calls to the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_api_processes import TwoProcessServer, cli

pytestmark = pytest.mark.slow

FEED = {"placement": "nowhere", "userId": "u1"}  # 404 once authenticated: no content needed


def test_changes_hold_at_once_in_the_second_api_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old_key = cli(data, "sources", "create", "web")
    admin = {"Authorization": f"Bearer {cli(data, 'tokens', 'create', 'ops', '--role', 'admin')}"}
    viewer_secret = cli(data, "tokens", "create", "app", "--role", "viewer")
    viewer = {"Authorization": f"Bearer {viewer_secret}"}
    server = TwoProcessServer(data)
    try:
        first, second = server.client_on(0), server.client_on(1)
        assert second.get("/v1/personalize", params=FEED, headers=viewer).status_code == 404
        app = next(t for t in first.get("/v1/tokens", headers=admin).json() if t["name"] == "app")
        assert first.delete(f"/v1/tokens/{app['id']}", headers=admin).status_code == 200
        for client in (first, second):
            refused = client.get("/v1/personalize", params=FEED, headers=viewer)
            assert (refused.status_code, refused.json()["code"]) == (401, "unknown_token")
            assert client.get("/v1/status", headers=viewer).status_code == 401

        old = {"X-Write-Key": old_key}
        assert second.get("/v1/personalize", params=FEED, headers=old).status_code == 404
        rotated = second.post(  # relayed to the first process
            "/v1/sources/web/rotate-key", json={"overlap_seconds": 0}, headers=admin
        )
        assert rotated.status_code == 200, rotated.text
        new = {"X-Write-Key": rotated.json()["write_key"]}
        assert second.get("/v1/personalize", params=FEED, headers=old).status_code == 401
        assert second.get("/v1/personalize", params=FEED, headers=new).status_code == 404

        assert first.post("/v1/sources/web/disable", headers=admin).status_code == 200
        disabled = second.get("/v1/personalize", params=FEED, headers=new)
        assert (disabled.status_code, disabled.json()["code"]) == (403, "source_disabled")
        track = second.post("/v1/track", json={"userId": "u1", "event": "E"}, headers=new)
        assert (track.status_code, track.json()["code"]) == (403, "source_disabled")

        actions = [e["action"] for e in first.get("/v1/audit", headers=admin).json()]
        assert actions == [
            "POST /v1/sources/{name}/disable",
            "POST /v1/sources/{name}/rotate-key",
            "DELETE /v1/tokens/{token_id}",
            "kirana tokens create",
            "kirana tokens create",
            "kirana sources create",
        ]  # the relayed call recorded once; the CLI's changes too
    finally:
        server.stop()
