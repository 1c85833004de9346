"""The audit log over HTTP: every admin change, of every kind of object, is recorded once
with who (token id and name), what (action, target, a summary without secrets) and when,
with the status it got; reads and tracking are not; only admins can read it."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import RunningKirana

HOOK_SECRET = "whsec-Aud1tN3verSh0ws"
DSN_PASSWORD = "Pg5ecretPassw0rd"
ERASED = "ana.erased@example.com"

#: (method, path, body, the route template the entry names, its target)
CHANGES = [
    ("POST", "/v1/sources", {"name": "web"}, "/v1/sources", ""),
    (
        "POST",
        "/v1/sources/web/rotate-key",
        {"overlap_seconds": 60},
        "/v1/sources/{name}/rotate-key",
        "web",
    ),
    ("POST", "/v1/sources/web/disable", None, "/v1/sources/{name}/disable", "web"),
    ("POST", "/v1/sources/web/enable", None, "/v1/sources/{name}/enable", "web"),
    ("DELETE", "/v1/sources/web", None, "/v1/sources/{name}", "web"),
    ("POST", "/v1/tokens", {"name": "ci", "role": "viewer"}, "/v1/tokens", ""),
    (
        "POST",
        "/v1/destinations",
        {
            "name": "crm",
            "kind": "webhook",
            "settings": {"url": "http://127.0.0.1:9/hook", "secret": HOOK_SECRET},
        },
        "/v1/destinations",
        "",
    ),
    (
        "POST",
        "/v1/syncs",
        {"name": "nightly", "source": {"sql": "SELECT 'a' AS k"}, "key": "k", "destination": "crm"},
        "/v1/syncs",
        "",
    ),
    ("DELETE", "/v1/syncs/nightly", None, "/v1/syncs/{name}", "nightly"),
    ("DELETE", "/v1/destinations/crm", None, "/v1/destinations/{name}", "crm"),
    (
        "PUT",
        "/v1/audiences/gold",
        {"sql": "SELECT profile_id FROM profiles"},
        "/v1/audiences/{name}",
        "gold",
    ),
    ("DELETE", "/v1/audiences/gold", None, "/v1/audiences/{name}", "gold"),
    ("POST", "/v1/experiments", {"key": "home"}, "/v1/experiments", ""),
    ("POST", "/v1/content/placements", {"key": "home_feed"}, "/v1/content/placements", ""),
    (
        "POST",
        "/v1/replication/sources",
        {
            "kind": "postgres",
            "name": "shop",
            "dsn": f"postgresql://kirana:{DSN_PASSWORD}@127.0.0.1:1/shop",
            "tables": ["public.orders"],
        },
        "/v1/replication/sources",
        "",
    ),
    ("POST", "/v1/privacy/erasures", {"identifier": ERASED}, "/v1/privacy/erasures", ""),
    (
        "POST",
        "/v1/models/outputs/buy_again/rollback",
        None,
        "/v1/models/outputs/{output}/rollback",
        "buy_again",
    ),
]


def test_every_admin_change_is_recorded_with_who_what_and_when(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    me = next(t for t in kirana.platform.store.list_tokens() if t.name == "admin")
    shown: list[str] = []  # credentials the API handed out: never in the log either
    statuses = []
    start = datetime.now(UTC)
    with kirana.client() as http:
        for method, path, body, _, _ in CHANGES:
            answer = http.request(method, path, json=body, headers=admin)
            assert answer.status_code != 401, path
            statuses.append(answer.status_code)
            if answer.status_code < 300 and answer.content:
                made = answer.json()
                shown += [
                    made[k] for k in ("write_key", "token") if isinstance(made, dict) and k in made
                ]
        # reads and tracking are not changes
        http.get("/v1/sources", headers=admin)
        http.post("/v1/track", json={"userId": "u", "event": "E"}, auth=(kirana.write_key, ""))
        entries = http.get("/v1/audit", params={"limit": 100}, headers=admin)
    end = datetime.now(UTC)
    assert entries.status_code == 200
    log = list(reversed(entries.json()))  # oldest first, as made
    assert [(e["action"], e["target"], e["status"]) for e in log] == [
        (f"{method} {template}", target, status)
        for (method, _, _, template, target), status in zip(CHANGES, statuses, strict=True)
    ]
    for entry in log:
        assert (entry["actor_id"], entry["actor_name"]) == (me.id, "admin")
        assert start <= datetime.fromisoformat(entry["at"]) <= end
    assert len(shown) == 3  # two write keys, one token
    for secret in [HOOK_SECRET, DSN_PASSWORD, ERASED, kirana.admin_token, *shown]:
        assert secret not in entries.text
    assert log[0]["summary"] == {"body": {"name": "web"}}
    assert log[1]["summary"]["body"] == {"overlap_seconds": 60}
    hook = log[6]["summary"]["body"]
    assert hook["settings"]["url"] == "http://127.0.0.1:9/hook"
    assert hook["settings"]["secret"] == "***"
    assert log[15]["summary"]["body"] == {"identifier": "***"}


def test_the_audit_log_pages_and_filters(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        for name in ("a", "b", "c"):
            assert http.post("/v1/sources", json={"name": name}, headers=admin).status_code == 201
        assert http.delete("/v1/sources/b", headers=admin).status_code == 204
        first = http.get("/v1/audit?limit=2", headers=admin).json()
        rest = http.get(f"/v1/audit?limit=2&before={first[-1]['seq']}", headers=admin).json()
        assert [e["action"] for e in first + rest] == [
            "DELETE /v1/sources/{name}",
            *["POST /v1/sources"] * 3,
        ]
        deletes = http.get("/v1/audit", params={"action": "DELETE"}, headers=admin).json()
        assert [e["target"] for e in deletes] == ["b"]
        assert len(http.get("/v1/audit", params={"target": "b"}, headers=admin).json()) == 1
        assert http.get("/v1/audit", params={"actor": "viewer"}, headers=admin).json() == []
        assert len(http.get("/v1/audit", params={"actor": "admin"}, headers=admin).json()) == 4


def test_a_viewers_refused_change_is_recorded_and_the_log_is_not_theirs(
    kirana: RunningKirana,
) -> None:
    viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        assert http.delete("/v1/sources/test", headers=viewer).status_code == 403
        assert http.get("/v1/audit", headers=viewer).status_code == 403
        assert http.delete("/v1/sources/test", headers={}).status_code == 401
        log = http.get("/v1/audit", headers=admin).json()
    assert [(e["actor_name"], e["action"], e["status"]) for e in log] == [
        ("viewer", "DELETE /v1/sources/{name}", 403)
    ]
