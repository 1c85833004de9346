"""Erasure: after it, no byte of the person is left anywhere Kirana writes."""

from __future__ import annotations

import json
from pathlib import Path

from deltalake import DeltaTable

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


def test_erasure_leaves_nothing_and_suppresses_future_events(kirana_any: RunningKirana) -> None:
    kirana = kirana_any
    body = send(kirana, history())
    assert body["accepted"] == 6 and len(body["rejected"]) == 1
    kirana.drain()
    # data in compacted and in superseded files alike
    consumers = kirana.platform.consumers
    if "lake-loader" in consumers:
        consumers["lake-loader"].consumer.compact()
    else:  # the loader runs in the worker process: compact the table from here
        DeltaTable(str(kirana.settings.lake_dir / "events")).optimize.compact()
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


def test_erasing_an_unknown_identifier_suppresses_it_with_zero_counts(
    kirana: RunningKirana,
) -> None:
    with kirana.client() as http:
        response = http.post(
            "/v1/privacy/erasures",
            json={"identifier": "nobody-3f9a", "type": "user_id"},
            headers={"Authorization": f"Bearer {kirana.admin_token}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile_id"] is None and body["identities"] == []
    assert body["suppressed"] == [{"type": "user_id", "value": "nobody-3f9a"}]
    assert body["lake_rows_deleted"] == body["log_records_redacted"] == 0
    assert body["quarantine_rows_deleted"] == 0
    assert all(not any(counts.values()) for counts in body["details"].values())
    later = send(kirana, [{"type": "track", "userId": "nobody-3f9a", "event": "Signed Up"}])
    assert later["accepted"] == 0 and later["suppressed"] == 1


def test_cli_erases_offline_and_refers_to_the_api_while_serving(kirana: RunningKirana) -> None:
    from typer.testing import CliRunner

    from kirana.cli.main import app

    send(kirana, history())
    kirana.drain()
    data = ["--data-dir", str(kirana.settings.data_dir)]
    runner = CliRunner()
    busy = runner.invoke(app, ["privacy", "delete", ALICE_USER, *data], env={"KIRANA_TOKEN": ""})
    assert busy.exit_code == 1 and "--token" in busy.output
    via_api = runner.invoke(
        app,
        [
            "privacy",
            "delete",
            ALICE_USER,
            "--url",
            kirana.url,
            "--token",
            kirana.admin_token,
            *data,
        ],
    )
    assert via_api.exit_code == 0, via_api.output
    assert '"lake_rows_deleted": 4' in via_api.output


def test_cli_erases_offline(settings) -> None:
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from kirana.cli.main import app
    from kirana.collect.normalize import normalize
    from kirana.collect.schema import event_decoder
    from kirana.eventlog.records import event_record
    from kirana.runtime import Platform

    platform = Platform.open(settings)
    platform.start()
    now = datetime.now(UTC)
    records = [
        event_record(
            normalize(event_decoder.decode(json.dumps(e).encode()), received_at=now, source_id="s")
        )
        for e in history()[:4]
    ]
    platform.log.append_sync(records)
    assert platform.drain()
    platform.close()
    result = CliRunner().invoke(
        app,
        [
            "privacy",
            "delete",
            ALICE_ANON,
            "--type",
            "anonymous_id",
            "--data-dir",
            str(settings.data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["lake_rows_deleted"] == 4
    # the same path as the API: every participant ran (and found nothing of hers here)
    assert set(printed["details"]) == {"models", "serving", "experiments", "syncs", "destinations"}
    assert occurrences(settings.data_dir, ALICE_MARKERS) == []
