"""The profile API and `kirana profile` over a real server fed through the tracking API."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kirana.cli.main import app
from tests.conftest import RunningKirana


def feed(kirana: RunningKirana) -> None:
    batch = [
        {
            "type": "page",
            "anonymousId": "anon-7",
            "name": "Home",
            "messageId": "p1",
            "timestamp": "2026-11-20T10:00:00Z",
        },
        {
            "type": "identify",
            "anonymousId": "anon-7",
            "userId": "cust-7",
            "messageId": "i1",
            "traits": {"email": "Seven@Example.com", "plan": "free"},
            "timestamp": "2026-11-20T10:01:00Z",
        },
        {
            "type": "track",
            "userId": "cust-7",
            "event": "Order Completed",
            "messageId": "o1",
            "properties": {"total": 30},
            "context": {"traits": {"plan": "gold"}},
            "timestamp": "2026-11-20T10:05:00Z",
        },
        {
            "type": "identify",
            "userId": "other",
            "anonymousId": "anon-7",
            "messageId": "i2",
            "timestamp": "2026-11-21T10:00:00Z",
        },
    ]
    with kirana.client() as http:
        assert (
            http.post("/v1/batch", json={"batch": batch}, auth=(kirana.write_key, "")).status_code
            == 200
        )
    kirana.drain()


def test_profile_by_any_identifier(kirana: RunningKirana) -> None:
    feed(kirana)
    auth = {"Authorization": f"Bearer {kirana.viewer_token}"}
    with kirana.client() as http:
        by_anon = http.get("/v1/profiles/anon-7", headers=auth).json()
        by_email = http.get(
            "/v1/profiles/seven@example.com", params={"type": "email"}, headers=auth
        ).json()
        other = http.get("/v1/profiles/other", headers=auth).json()
    assert by_anon["profile_id"] == by_email["profile_id"] != other["profile_id"]
    assert {(i["type"], i["value"]) for i in by_anon["identities"]} == {
        ("user_id", "cust-7"),
        ("anonymous_id", "anon-7"),
        ("email", "seven@example.com"),
    }
    assert by_anon["traits"] == {"email": "Seven@Example.com", "plan": "gold"}
    assert [e["message_id"] for e in by_anon["latest_events"]] == ["o1", "i1", "p1"]
    assert by_anon["latest_events"][0]["properties"] == {"total": 30}
    assert by_anon["merged_from"], "the anonymous profile was merged in"
    assert [e["message_id"] for e in other["latest_events"]] == ["i2"]  # shared device


def test_profile_api_errors(kirana: RunningKirana) -> None:
    feed(kirana)
    with kirana.client() as http:
        assert http.get("/v1/profiles/anon-7").status_code == 401
        key = {"Authorization": f"Bearer {kirana.write_key}"}
        assert http.get("/v1/profiles/anon-7", headers=key).status_code == 401
        auth = {"Authorization": f"Bearer {kirana.viewer_token}"}
        missing = http.get("/v1/profiles/nobody", headers=auth)
        assert missing.status_code == 404 and "nobody" in missing.json()["message"]
        bad = http.get("/v1/profiles/x", params={"type": "shoe_size"}, headers=auth)
        assert bad.status_code == 422 and "`type`" in bad.json()["message"]


def test_kirana_profile_prints_the_same(kirana: RunningKirana) -> None:
    feed(kirana)
    result = CliRunner().invoke(
        app, ["profile", "cust-7", "--data-dir", str(kirana.settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["traits"]["plan"] == "gold"
    assert len(printed["latest_events"]) == 3
