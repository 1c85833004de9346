"""The tracking API over real HTTP: auth, encodings, limits, partial batches, load shedding."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import pytest

from tests.conftest import RunningKirana

EVENT = {"userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p1"}}


def post(kirana: RunningKirana, path: str, body, *, auth=True, headers=None, raw=None):
    with kirana.client() as http:
        return http.post(
            path,
            content=raw if raw is not None else json.dumps(body).encode(),
            auth=(kirana.write_key, "") if auth is True else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )


def lake_ids(kirana: RunningKirana) -> list[str]:
    kirana.drain()
    return [r[0] for r in kirana.lake("SELECT message_id FROM events ORDER BY message_id")]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/track", {**EVENT, "messageId": "t"}),
        ("/v1/identify", {"userId": "u1", "traits": {"email": "a@b.c"}, "messageId": "i"}),
        ("/v1/page", {"anonymousId": "a1", "name": "Home", "messageId": "p"}),
        ("/v1/screen", {"userId": "u1", "name": "Cart", "messageId": "s"}),
        ("/v1/group", {"userId": "u1", "groupId": "g1", "messageId": "g"}),
        ("/v1/alias", {"userId": "u1", "previousId": "a1", "messageId": "a"}),
    ],
)
def test_every_single_event_endpoint_lands_its_type(
    kirana: RunningKirana, path: str, body: dict
) -> None:
    response = post(kirana, path, body)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    kirana.drain()
    assert kirana.lake("SELECT message_id, type FROM events") == [(body["messageId"], path[4:])]


@pytest.mark.parametrize("how", ["basic", "header", "body"])
def test_write_key_is_accepted_three_ways(kirana: RunningKirana, how: str) -> None:
    body = {**EVENT, "messageId": f"m-{how}"}
    headers = {}
    if how == "basic":
        token = base64.b64encode(f"{kirana.write_key}:".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif how == "header":
        headers["X-Write-Key"] = kirana.write_key
    else:
        body["writeKey"] = kirana.write_key
    assert post(kirana, "/v1/track", body, auth=False, headers=headers).status_code == 200
    assert lake_ids(kirana) == [f"m-{how}"]


def test_missing_and_unknown_write_keys_get_401(kirana: RunningKirana) -> None:
    missing = post(kirana, "/v1/track", EVENT, auth=False)
    assert missing.status_code == 401 and missing.json()["code"] == "missing_write_key"
    unknown = post(
        kirana,
        "/v1/batch",
        {"batch": [{**EVENT, "type": "track"}]},
        auth=False,
        headers={"X-Write-Key": "wk_nope"},
    )
    assert unknown.status_code == 401 and unknown.json()["code"] == "unknown_write_key"
    assert lake_ids(kirana) == []


def test_gzip_bodies_are_accepted_and_broken_gzip_is_400(kirana: RunningKirana) -> None:
    body = {"batch": [{**EVENT, "type": "track", "messageId": "gz"}]}
    ok = post(
        kirana,
        "/v1/batch",
        None,
        raw=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200, ok.text
    broken = post(
        kirana,
        "/v1/batch",
        None,
        raw=b"\x1f\x8b\x08\x00garbage",
        headers={"Content-Encoding": "gzip"},
    )
    assert broken.status_code == 400 and broken.json()["code"] == "invalid_encoding"
    truncated = gzip.compress(json.dumps(body).encode())[:-12]
    cut = post(kirana, "/v1/batch", None, raw=truncated, headers={"Content-Encoding": "gzip"})
    assert cut.status_code == 400
    assert lake_ids(kirana) == ["gz"]


def test_size_limits_give_413(kirana: RunningKirana) -> None:
    big_event = {**EVENT, "properties": {"blob": "x" * 33_000}}
    assert post(kirana, "/v1/track", big_event).status_code == 413
    big_batch = {"batch": [{**EVENT, "type": "track", "properties": {"b": "x" * 20_000}}] * 30}
    response = post(kirana, "/v1/batch", big_batch)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    bomb = zlib.compress(b"{" + b" " * 5_000_000 + b"}")
    bombed = post(kirana, "/v1/track", None, raw=bomb, headers={"Content-Encoding": "deflate"})
    assert bombed.status_code == 413
    assert lake_ids(kirana) == []


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b'{"userId": ["u"], "event": "E"}', "invalid_field", "$.userId"),
        (
            b'{"userId": "u", "event": "E", "timestamp": "yesterday"}',
            "invalid_field",
            "$.timestamp",
        ),
        (b'{"event": "E"}', "missing_field", "`userId` or `anonymousId`"),
        (
            b'{"userId": "u", "event": "E", "timestamp": "1901-01-01T00:00:00Z"}',
            "invalid_timestamp",
            "before 2000",
        ),
        (b'{"userId": "u", "event": "E", "properties": [1, 2]}', "invalid_field", "$.properties"),
    ],
)
def test_invalid_single_events_get_400_naming_the_field(
    kirana: RunningKirana, raw: bytes, code: str, fragment: str
) -> None:
    response = post(kirana, "/v1/track", None, raw=raw)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and fragment in body["message"], body
    assert lake_ids(kirana) == []


def test_batch_accepts_good_events_and_quarantines_each_bad_one(kirana: RunningKirana) -> None:
    good = [{**EVENT, "type": "track", "messageId": f"good-{i}"} for i in range(98)]
    bad_type = {"type": "track", "event": "E", "userId": {"no": 1}, "messageId": "bad-type"}
    no_user = {"type": "track", "event": "E", "messageId": "bad-user"}
    batch = [*good[:40], bad_type, *good[40:], no_user]
    response = post(kirana, "/v1/batch", {"batch": batch, "context": {"ip": "10.0.0.1"}})
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 98
    assert [(r["index"], r["messageId"], r["code"]) for r in body["rejected"]] == [
        (40, "bad-type", "invalid_field"),
        (99, "bad-user", "missing_field"),
    ]
    assert "$.batch[40].userId" in body["rejected"][0]["reason"]
    assert lake_ids(kirana) == sorted(e["messageId"] for e in good)
    assert kirana.lake("SELECT DISTINCT context->>'$.ip' FROM events") == [("10.0.0.1",)]

    with kirana.client() as http:
        listed = http.get(
            "/v1/quarantine", headers={"Authorization": f"Bearer {kirana.viewer_token}"}
        )
    assert listed.status_code == 200
    entries = listed.json()
    assert [(e["batch_index"], e["message_id"], e["code"]) for e in entries] == [
        (40, "bad-type", "invalid_field"),
        (99, "bad-user", "missing_field"),
    ]
    assert json.loads(entries[0]["raw"]) == bad_type


def test_oversize_event_inside_a_batch_is_rejected_alone(kirana: RunningKirana) -> None:
    batch = [
        {**EVENT, "type": "track", "messageId": "small"},
        {**EVENT, "type": "track", "messageId": "huge", "properties": {"x": "y" * 33_000}},
    ]
    body = post(kirana, "/v1/batch", {"batch": batch}).json()
    assert body["accepted"] == 1 and body["rejected"][0]["code"] == "event_too_large"
    assert lake_ids(kirana) == ["small"]


def test_quarantine_api_needs_a_token_not_a_write_key(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        assert http.get("/v1/quarantine").status_code == 401
        with_key = http.get(
            "/v1/quarantine", headers={"Authorization": f"Bearer {kirana.write_key}"}
        )
        assert with_key.status_code == 401
        viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
        assert http.post("/v1/sources", json={"name": "x"}, headers=viewer).status_code == 403
        admin = {"Authorization": f"Bearer {kirana.admin_token}"}
        created = http.post("/v1/sources", json={"name": "web"}, headers=admin)
        assert created.status_code == 201
        key = created.json()["write_key"]
    response = post(
        kirana,
        "/v1/track",
        {**EVENT, "messageId": "via-new"},
        auth=False,
        headers={"X-Write-Key": key},
    )
    assert response.status_code == 200


def test_retried_messages_land_once(kirana: RunningKirana) -> None:
    body = {"batch": [{**EVENT, "type": "track", "messageId": f"r-{i}"} for i in range(10)]}
    for _ in range(3):
        assert post(kirana, "/v1/batch", body).status_code == 200
        kirana.drain()
    assert lake_ids(kirana) == sorted(f"r-{i}" for i in range(10))


def test_overload_sheds_with_429_and_retry_after(kirana: RunningKirana, monkeypatch) -> None:
    collector = kirana.platform.collector
    monkeypatch.setattr(collector, "_max_pending", -1)  # any queue at all counts as saturated
    response = post(kirana, "/v1/track", {**EVENT, "messageId": "shed"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert lake_ids(kirana) == []


def test_openapi_documents_the_tracking_api(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        spec = http.get("/openapi.json").json()
        assert http.get("/docs").status_code == 200
    assert {"/v1/track", "/v1/batch", "/v1/identify", "/v1/quarantine"} <= set(spec["paths"])
    body = spec["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:  # shared schemas live under components
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert "batch" in schema["properties"]
