"""The experiments API over a real server: lifecycle, roles, and refusals that name the field."""

from __future__ import annotations

import httpx

from tests.conftest import RunningKirana

TWO_ARMS = [{"key": "control"}, {"key": "treatment"}]


def _admin(kirana: RunningKirana) -> httpx.Client:
    client = kirana.client()
    client.headers["Authorization"] = f"Bearer {kirana.admin_token}"
    return client


def test_lifecycle_draft_running_stopped(kirana: RunningKirana) -> None:
    admin = _admin(kirana)
    assert (
        admin.put(
            "/v1/metrics/orders", json={"type": "count", "event": "Order Completed"}
        ).status_code
        == 200
    )
    created = admin.post(
        "/v1/experiments", json={"key": "hero", "variations": TWO_ARMS, "metrics": ["orders"]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    assert created.json()["started_at"] is None

    # drafts assign nobody and are absent from the SDK payload's rules
    features = httpx.get(f"{kirana.url}/api/features/{kirana.write_key}").json()["features"]
    assert features["exp:hero"]["rules"] == []

    edited = admin.put("/v1/experiments/hero", json={"variations": TWO_ARMS, "coverage": 0.5})
    assert edited.status_code == 200 and edited.json()["coverage"] == 0.5

    started = admin.post("/v1/experiments/hero/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert started.json()["started_at"] is not None
    assert admin.post("/v1/experiments/hero/start").status_code == 409
    frozen = admin.put("/v1/experiments/hero", json={"variations": TWO_ARMS})
    assert frozen.status_code == 409 and "only drafts" in frozen.json()["message"]
    assert admin.delete("/v1/experiments/hero").status_code == 409

    features = httpx.get(f"{kirana.url}/api/features/{kirana.write_key}").json()["features"]
    assert features["exp:hero"]["rules"][0]["coverage"] == 0.5

    stopped = admin.post("/v1/experiments/hero/stop")
    assert stopped.json()["status"] == "stopped" and stopped.json()["stopped_at"] is not None
    assert admin.post("/v1/experiments/hero/start").status_code == 409
    listed = kirana.client().get(
        "/v1/experiments", headers={"Authorization": f"Bearer {kirana.viewer_token}"}
    )
    assert [e["key"] for e in listed.json()] == ["hero"]
    assert admin.delete("/v1/experiments/hero").status_code == 204
    assert admin.get("/v1/experiments/hero").status_code == 404


def test_viewers_read_admins_write(kirana: RunningKirana) -> None:
    viewer = kirana.client()
    viewer.headers["Authorization"] = f"Bearer {kirana.viewer_token}"
    denied = viewer.post("/v1/experiments", json={"key": "x", "variations": TWO_ARMS})
    assert denied.status_code == 403
    assert viewer.get("/v1/experiments").status_code == 200
    assert kirana.client().get("/v1/experiments").status_code == 401


def _refusal(admin: httpx.Client, body: dict) -> dict:
    response = admin.post("/v1/experiments", json=body)
    assert response.status_code == 422, response.text
    return response.json()


def test_invalid_definitions_are_refused_naming_the_field(kirana: RunningKirana) -> None:
    admin = _admin(kirana)
    err = _refusal(admin, {"key": "w", "variations": TWO_ARMS, "weights": [0.5, 0.6]})
    assert err["field"] == "weights" and "sum to 1" in err["rule"]
    err = _refusal(admin, {"key": "m", "variations": TWO_ARMS, "metrics": ["nope"]})
    assert err["field"] == "metrics[0]" and "unknown metric 'nope'" in err["rule"]
    err = _refusal(admin, {"key": "a", "variations": TWO_ARMS, "audiences": ["big-spenders"]})
    assert err["field"] == "audiences[0]" and "unknown audience" in err["rule"]
    err = _refusal(admin, {"key": "h", "variations": TWO_ARMS, "holdout": "missing"})
    assert err["field"] == "holdout"
    err = _refusal(admin, {"key": "s", "variations": TWO_ARMS, "status": "running"})
    assert err["field"] == "status"
    err = _refusal(admin, {"key": "c", "variations": TWO_ARMS, "analysis": {"alpha": 1.5}})
    assert err["field"] == "analysis.alpha"
    bad_metric = admin.put("/v1/metrics/rev", json={"type": "sum", "event": "Order Completed"})
    assert bad_metric.status_code == 422 and bad_metric.json()["field"] == "value"
    assert admin.get("/v1/experiments").json() == []

    # overlapping namespace slices: both may exist as drafts, only one may run
    for key, ns in (("left", ["checkout", 0, 0.6]), ("right", ["checkout", 0.5, 1])):
        body = {"key": key, "variations": TWO_ARMS, "namespace": ns}
        assert admin.post("/v1/experiments", json=body).status_code == 201
    assert admin.post("/v1/experiments/left/start").status_code == 200
    overlap = admin.post("/v1/experiments/right/start")
    assert overlap.status_code == 422
    assert overlap.json()["field"] == "namespace" and "overlap" in overlap.json()["rule"]
    assert admin.get("/v1/experiments/right").json()["status"] == "draft"


def test_features_endpoint_needs_a_known_client_key_and_honours_etags(
    kirana: RunningKirana,
) -> None:
    assert httpx.get(f"{kirana.url}/api/features/nope").status_code == 404
    first = httpx.get(f"{kirana.url}/api/features/{kirana.write_key}")
    assert first.status_code == 200 and first.json()["status"] == 200
    again = httpx.get(
        f"{kirana.url}/api/features/{kirana.write_key}",
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    admin = _admin(kirana)
    admin.put(
        "/v1/flags/banner", json={"default": "off", "rules": [{"type": "force", "value": "on"}]}
    )
    changed = httpx.get(
        f"{kirana.url}/api/features/{kirana.write_key}",
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert changed.status_code == 200
    assert changed.json()["features"]["banner"]["rules"][0]["force"] == "on"


def test_assign_endpoint_needs_a_write_key_and_an_id(kirana: RunningKirana) -> None:
    client = kirana.client()
    assert client.post("/v1/experiments/assign", json={"userId": "u"}).status_code == 401
    headers = {"X-Write-Key": kirana.write_key}
    missing = client.post("/v1/experiments/assign", json={"attributes": {}}, headers=headers)
    assert missing.status_code == 422 and "userId" in missing.json()["message"]


def test_server_side_targeting_reads_profile_traits(kirana: RunningKirana) -> None:
    admin = _admin(kirana)
    body = {"key": "pro-only", "variations": TWO_ARMS, "targeting": {"plan": "pro"}}
    assert admin.post("/v1/experiments", json=body).status_code == 201
    assert admin.post("/v1/experiments/pro-only/start").status_code == 200
    client = kirana.client()
    for user, plan in (("alice", "pro"), ("bob", "free")):
        sent = client.post(
            "/v1/identify",
            json={"userId": user, "traits": {"plan": plan}},
            auth=(kirana.write_key, ""),
        )
        assert sent.status_code == 200
    kirana.drain()
    headers = {"X-Write-Key": kirana.write_key}

    def experiments_of(body: dict) -> list[str]:
        response = client.post("/v1/experiments/assign", json=body, headers=headers)
        return [a["experiment_id"] for a in response.json()["assignments"]]

    assert experiments_of({"userId": "alice"}) == ["pro-only"]  # trait from the profile
    assert experiments_of({"userId": "bob"}) == []
    # what the caller sends wins over the stored profile
    assert experiments_of({"userId": "bob", "attributes": {"plan": "pro"}}) == ["pro-only"]
    assert experiments_of({"userId": "carol"}) == []  # no profile, no trait


def test_server_side_targeting_reads_audience_memberships(kirana: RunningKirana) -> None:
    admin = _admin(kirana)
    client = kirana.client()
    for user, plan in (("alice", "pro"), ("bob", "free")):
        client.post(
            "/v1/identify",
            json={"userId": user, "traits": {"plan": plan}},
            auth=(kirana.write_key, ""),
        )
    kirana.drain()
    audience = {"sql": "SELECT profile_id FROM profiles WHERE traits->>'$.plan' = 'pro'"}
    assert admin.put("/v1/audiences/pros", json=audience).status_code == 200
    assert admin.post("/v1/segments/refresh").status_code == 200
    body = {"key": "for-pros", "variations": TWO_ARMS, "audiences": ["pros"]}
    assert admin.post("/v1/experiments", json=body).status_code == 201
    assert admin.post("/v1/experiments/for-pros/start").status_code == 200
    headers = {"X-Write-Key": kirana.write_key}
    got = {
        user: client.post("/v1/experiments/assign", json={"userId": user}, headers=headers).json()[
            "assignments"
        ]
        for user in ("alice", "bob")
    }
    assert [a["experiment_id"] for a in got["alice"]] == ["for-pros"]
    assert got["bob"] == []


def test_starting_an_experiment_that_would_assign_nobody_warns(kirana: RunningKirana) -> None:
    admin = _admin(kirana)
    past = {"phase_start": "2020-01-01T00:00:00Z", "phase_end": "2020-02-01T00:00:00Z"}
    for key, extra in [("ended", past), ("fine", {})]:
        created = admin.post("/v1/experiments", json={"key": key, "variations": TWO_ARMS, **extra})
        assert created.status_code == 201, created.text
    ended = admin.post("/v1/experiments/ended/start").json()
    assert ended["status"] == "running"
    assert any("phase ended" in w for w in ended["warnings"])
    assert admin.post("/v1/experiments/fine/start").json()["warnings"] == []
    answer = httpx.post(
        f"{kirana.url}/v1/experiments/assign", json={"userId": "u1"}, auth=(kirana.write_key, "")
    ).json()
    assert [a["experiment_id"] for a in answer["assignments"]] == ["fine"]
