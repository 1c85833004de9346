"""Erasure: after it, no byte of the person is left anywhere Kirana writes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningKirana

ALICE_USER = "alice-7f3e1d"
ALICE_ANON = "anon-alice-91c2"
ALICE_EMAIL = "alice-91c2@example.com"
BOB_USER = "bob-22aa9c"
ALICE_MARKERS = [ALICE_USER.encode(), ALICE_ANON.encode(), b"alice-91c2"]


def occurrences(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.extend(f"{path.relative_to(root)}: {n!r}" for n in needles if n in data)
    return found


def send(kirana: RunningKirana, batch: list[dict]) -> dict:
    with kirana.client() as http:
        response = http.post("/v1/batch", json={"batch": batch}, auth=(kirana.write_key, ""))
    assert response.status_code == 200, response.text
    return response.json()


def history() -> list[dict]:
    return [
        {"type": "page", "anonymousId": ALICE_ANON, "name": "Home"},
        {
            "type": "identify",
            "anonymousId": ALICE_ANON,
            "userId": ALICE_USER,
            "traits": {"email": ALICE_EMAIL, "name": "Alice"},
        },
        {
            "type": "track",
            "userId": ALICE_USER,
            "event": "Order Completed",
            "properties": {"total": 12.0},
        },
        {"type": "alias", "userId": ALICE_USER, "previousId": ALICE_ANON},
        {
            "type": "track",
            "event": "Bad",
            "userId": ALICE_USER,
            "properties": ["not", "an", "object"],
            "context": {"traits": {"email": ALICE_EMAIL}},
        },  # quarantined, mentions her
        {"type": "identify", "userId": BOB_USER, "traits": {"email": "bob@example.com"}},
        {"type": "track", "userId": BOB_USER, "event": "Order Completed"},
    ]


def test_erasure_leaves_nothing_and_suppresses_future_events(kirana: RunningKirana) -> None:
    body = send(kirana, history())
    assert body["accepted"] == 6 and len(body["rejected"]) == 1
    kirana.drain()
    loader = kirana.platform.consumers["lake-loader"].consumer
    loader.compact()  # data in compacted and in superseded files alike
    send(kirana, [{"type": "track", "userId": ALICE_USER, "event": "Product Viewed"}])
    kirana.drain()
    data_dir = kirana.settings.data_dir
    assert occurrences(data_dir, ALICE_MARKERS), "the test data must be there before erasure"

    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
        refused = http.post(
            "/v1/privacy/erasures", json={"identifier": ALICE_EMAIL}, headers=viewer
        )
        assert refused.status_code == 403
        response = http.post(
            "/v1/privacy/erasures", json={"identifier": ALICE_EMAIL}, headers=admin
        )
    assert response.status_code == 200, response.text
    report = response.json()
    assert {(i["type"], i["value"]) for i in report["identities"]} == {
        ("user_id", ALICE_USER),
        ("anonymous_id", ALICE_ANON),
        ("email", ALICE_EMAIL),
    }
    assert report["lake_rows_deleted"] == 5
    assert report["quarantine_rows_deleted"] == 1
    assert report["log_records_redacted"] >= 6

    assert occurrences(data_dir, ALICE_MARKERS) == []

    # she writes again: suppressed, reported, not stored
    after = send(
        kirana,
        [
            {"type": "track", "userId": ALICE_USER, "event": "Product Viewed"},
            {"type": "track", "anonymousId": ALICE_ANON, "event": "Product Viewed"},
            {"type": "track", "userId": BOB_USER, "event": "Product Viewed"},
        ],
    )
    assert after["accepted"] == 1 and after["suppressed"] == 2
    kirana.drain()
    assert occurrences(data_dir, ALICE_MARKERS) == []
    with kirana.client() as http:
        assert http.get(f"/v1/profiles/{ALICE_USER}", headers=admin).status_code == 404
        bob = http.get(f"/v1/profiles/{BOB_USER}", headers=admin).json()
    assert bob["traits"] == {"email": "bob@example.com"}
    assert len(bob["latest_events"]) == 3
    assert kirana.lake(f"SELECT count(*) FROM events WHERE user_id = '{BOB_USER}'") == [(3,)]


def test_erasing_an_unknown_person_is_404(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        response = http.post(
            "/v1/privacy/erasures",
            json={"identifier": "nobody"},
            headers={"Authorization": f"Bearer {kirana.admin_token}"},
        )
    assert response.status_code == 404
