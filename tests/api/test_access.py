"""Access management over HTTP: write keys shown once, rotated with an overlap, sources
disabled, enabled and deleted, tokens revoked with immediate effect, destinations and
syncs deleted, and who may do any of it (admins; viewers get 403)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import RunningKirana

EVENT = {"userId": "u1", "event": "Product Viewed", "messageId": "m-1"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def admin(kirana: RunningKirana) -> dict[str, str]:
    return {"Authorization": f"Bearer {kirana.admin_token}"}


def track(http: httpx.Client, key: str, message_id: str = "m-1") -> httpx.Response:
    return http.post("/v1/track", json={**EVENT, "messageId": message_id}, auth=(key, ""))


def test_a_write_key_is_in_the_create_answer_and_never_in_a_list(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        made = http.post("/v1/sources", json={"name": "web"}, headers=admin(kirana))
        assert made.status_code == 201, made.text
        key = made.json()["write_key"]
        assert track(http, key).status_code == 200
        listed = http.get("/v1/sources", headers=admin(kirana))
        shown = http.get("/v1/sources/web", headers=admin(kirana))
    for answer in (listed, shown):
        assert answer.status_code == 200
        assert key not in answer.text and kirana.write_key not in answer.text
        assert '"write_key"' not in answer.text
    web = shown.json()
    assert [k["prefix"] for k in web["write_keys"]] == [key[:7]]
    assert web["enabled"] is True


def test_rotation_keeps_both_keys_for_the_overlap_then_only_the_new(
    kirana: RunningKirana,
) -> None:
    clock = Clock()
    kirana.platform.store.clock = clock  # type: ignore[attr-defined]
    old = kirana.write_key
    with kirana.client() as http:
        rotated = http.post(
            "/v1/sources/test/rotate-key", json={"overlap_seconds": 3600}, headers=admin(kirana)
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["write_key"]
        assert [k["expires_at"] is None for k in rotated.json()["write_keys"]] == [False, True]
        assert track(http, old, "a").status_code == 200
        assert track(http, new, "b").status_code == 200
        clock.now += timedelta(seconds=3599)
        assert track(http, old, "c").status_code == 200
        clock.now += timedelta(seconds=1)
        refused = track(http, old, "d")
        assert (refused.status_code, refused.json()["code"]) == (401, "unknown_write_key")
        assert track(http, new, "e").status_code == 200
        default = http.post("/v1/sources/test/rotate-key", headers=admin(kirana)).json()
        expires = datetime.fromisoformat(default["write_keys"][0]["expires_at"])
        assert expires == clock.now + timedelta(hours=24)  # the default overlap: a day


@pytest.mark.parametrize("overlap", [-1, 31 * 24 * 3600, "soon"])
def test_a_bad_overlap_is_refused_naming_the_field(kirana: RunningKirana, overlap) -> None:
    with kirana.client() as http:
        answer = http.post(
            "/v1/sources/test/rotate-key", json={"overlap_seconds": overlap}, headers=admin(kirana)
        )
        assert answer.status_code == 422
        assert answer.json()["code"] == "invalid_field"
        assert "overlap_seconds" in answer.json()["message"]
        assert track(http, kirana.write_key).status_code == 200  # nothing changed


def test_a_disabled_source_gets_403_and_nothing_is_stored(kirana: RunningKirana) -> None:
    log = kirana.platform.log
    with kirana.client() as http:
        assert (
            http.post("/v1/sources/test/disable", headers=admin(kirana)).json()["enabled"] is False
        )
        before = log.end_offset
        for answer in (
            track(http, kirana.write_key, "x1"),
            http.post("/v1/batch", json={"batch": [EVENT]}, auth=(kirana.write_key, "")),
            http.post("/v1/track", json={**EVENT, "writeKey": kirana.write_key}),
        ):
            assert answer.status_code == 403
            assert answer.json()["code"] == "source_disabled"
            assert "test" in answer.json()["message"]
        assert log.end_offset == before
        key = {"X-Write-Key": kirana.write_key}
        feed = http.get("/v1/personalize", params={"placement": "p", "userId": "u"}, headers=key)
        features = http.get(f"/api/features/{kirana.write_key}")
        for answer in (feed, features):
            assert (answer.status_code, answer.json()["code"]) == (403, "source_disabled")
        assert http.post("/v1/sources/test/enable", headers=admin(kirana)).json()["enabled"]
        assert http.get(f"/api/features/{kirana.write_key}").status_code == 200
        assert track(http, kirana.write_key, "x2").status_code == 200
        assert log.end_offset > before


def test_a_deleted_sources_keys_stop_at_once_and_its_events_stay(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        assert track(http, kirana.write_key, "kept").status_code == 200
        kirana.drain()
        assert http.delete("/v1/sources/test", headers=admin(kirana)).status_code == 204
        refused = track(http, kirana.write_key, "after")
        assert (refused.status_code, refused.json()["code"]) == (401, "unknown_write_key")
        assert http.get("/v1/sources/test", headers=admin(kirana)).status_code == 404
        assert http.delete("/v1/sources/test", headers=admin(kirana)).status_code == 404
    assert kirana.lake("SELECT message_id FROM events") == [("kept",)]


def test_a_revoked_token_gets_401_on_the_next_request_everywhere(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        made = http.post("/v1/tokens", json={"name": "ci", "role": "admin"}, headers=admin(kirana))
        assert made.status_code == 201, made.text
        token = made.json()
        bearer = {"Authorization": f"Bearer {token['token']}"}
        routes = ["/v1/status", "/v1/sources", "/v1/audit", "/v1/personalize?placement=p&userId=u"]
        before = {path: http.get(path, headers=bearer).status_code for path in routes}
        assert 401 not in before.values() and 403 not in before.values()
        revoked = http.delete(f"/v1/tokens/{token['id']}", headers=admin(kirana))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        for path in routes:
            answer = http.get(path, headers=bearer)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["code"] == "unknown_token"
        post = http.post("/v1/sources", json={"name": "late"}, headers=bearer)
        assert post.status_code == 401
        listed = http.get("/v1/tokens", headers=admin(kirana))
        assert token["token"] not in listed.text
        assert {t["name"]: t["revoked_at"] is not None for t in listed.json()}["ci"]
        assert http.delete("/v1/tokens/tok_nope", headers=admin(kirana)).status_code == 404


def test_destinations_and_syncs_can_be_deleted(kirana: RunningKirana) -> None:
    hook = {
        "name": "crm",
        "kind": "webhook",
        "settings": {"url": "http://127.0.0.1:9/hook", "secret": "s" * 24},
    }
    sync = {
        "name": "nightly",
        "source": {"sql": "SELECT 'a' AS k"},
        "key": "k",
        "destination": "crm",
    }
    with kirana.client() as http:
        made = http.post("/v1/destinations", json=hook, headers=admin(kirana))
        assert made.status_code == 201, made.text
        made = http.post("/v1/syncs", json=sync, headers=admin(kirana))
        assert made.status_code == 201, made.text
        assert http.delete("/v1/syncs/nightly", headers=admin(kirana)).status_code == 204
        assert all(
            s["name"] != "nightly" for s in http.get("/v1/syncs", headers=admin(kirana)).json()
        )
        assert http.delete("/v1/syncs/nightly", headers=admin(kirana)).status_code == 404
        assert http.delete("/v1/destinations/crm", headers=admin(kirana)).status_code == 204
        assert http.get("/v1/destinations/crm", headers=admin(kirana)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/sources", {"name": "web"}),
        ("POST", "/v1/sources/test/rotate-key", {}),
        ("POST", "/v1/sources/test/disable", None),
        ("DELETE", "/v1/sources/test", None),
        ("POST", "/v1/tokens", {"name": "x", "role": "admin"}),
        ("DELETE", "/v1/tokens/tok_x", None),
        ("POST", "/v1/destinations", {"name": "d", "kind": "profiles"}),
        ("PUT", "/v1/audiences/gold", {"sql": "SELECT profile_id FROM profiles"}),
    ],
)
def test_viewers_can_change_nothing(kirana: RunningKirana, method, path, body) -> None:
    viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
    with kirana.client() as http:
        answer = http.request(method, path, json=body, headers=viewer)
        assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
        assert http.get("/v1/audit", headers=viewer).status_code == 403
        assert track(http, kirana.write_key).status_code == 200  # the source is untouched
