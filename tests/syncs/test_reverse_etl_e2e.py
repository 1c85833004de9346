"""Reverse ETL end to end over a real server: model output -> profile traits; audiences out."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from kirana.cli.main import app
from tests.conftest import RunningKirana
from tests.destinations.receivers import WebhookReceiver
from tests.syncs.conftest import write_table


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_model_output_table_becomes_profile_traits(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    lake = kirana.settings.lake_dir
    # what a churn model job writes: one row per customer
    write_table(
        lake,
        "churn_scores",
        [
            {"customer": "c1", "churn_risk": 0.81, "next_best_category": "dairy", "model": "v3"},
            {"customer": "c2", "churn_risk": 0.12, "next_best_category": "bakery", "model": "v3"},
        ],
    )
    sync = {
        "name": "churn-traits",
        "source": {"sql": "SELECT * FROM churn_scores"},
        "key": "customer",
        "destination": "profiles",
        "mapping": {"churn_risk": "churn_risk", "next_best_category": "next_best_category"},
    }
    with kirana.client() as http:
        made = http.post(
            "/v1/destinations", json={"name": "profiles", "kind": "profiles"}, headers=admin
        )
        assert made.status_code == 201, made.text
        assert http.post("/v1/syncs", json=sync, headers=admin).status_code == 201
        first = http.post("/v1/syncs/churn-traits/run", headers=admin).json()
        assert (first["rows_read"], first["added"], first["queued"]) == (2, 2, 2)

        def traits(user: str) -> dict:
            got = http.get(f"/v1/profiles/{user}", headers=admin)
            return got.json()["traits"] if got.status_code == 200 else {}

        wait_for(lambda: traits("c1").get("churn_risk") == 0.81, what="c1's churn_risk trait")
        assert traits("c2") == {"churn_risk": 0.12, "next_best_category": "bakery"}

        write_table(
            lake,
            "churn_scores",
            [
                {
                    "customer": "c1",
                    "churn_risk": 0.35,
                    "next_best_category": "dairy",
                    "model": "v4",
                },
                {
                    "customer": "c2",
                    "churn_risk": 0.12,
                    "next_best_category": "bakery",
                    "model": "v4",
                },
            ],
        )
        second = http.post("/v1/syncs/churn-traits/run", headers=admin).json()
        assert (second["updated"], second["unchanged"], second["queued"]) == (1, 1, 1)
        wait_for(lambda: traits("c1").get("churn_risk") == 0.35, what="the updated trait")
        runs = http.get("/v1/syncs/churn-traits/runs", headers=admin).json()
        assert [r["queued"] for r in runs] == [1, 2]
        listed = http.get("/v1/syncs", headers=admin).json()
        assert listed[0]["last_run"]["status"] == "succeeded"
    kirana.drain()
    # the write-back travelled as identify events, so the lake has them too
    rows = kirana.lake(
        "SELECT user_id, traits->>'$.churn_risk' FROM events WHERE type = 'identify' "
        "AND source_id = 'kirana' ORDER BY received_at"
    )
    assert rows == [("c1", "0.81"), ("c2", "0.12"), ("c1", "0.35")]


def test_audience_entries_and_exits_route_to_a_webhook_and_sync_as_rows(
    kirana: RunningKirana,
) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    receiver = WebhookReceiver()
    try:
        with kirana.client() as http:
            audience = {"sql": "SELECT profile_id FROM profiles WHERE traits->>'$.plan' = 'gold'"}
            assert http.put("/v1/audiences/gold", json=audience, headers=admin).status_code == 200
            hook = {
                "name": "crm",
                "kind": "webhook",
                "settings": {"url": receiver.url, "secret": "s" * 20},
                "routes": [
                    {
                        "stream": "audiences",
                        "audiences": ["gold"],
                        "mapping": {"user": "userId", "audience": "properties.audience"},
                    }
                ],
            }
            assert http.post("/v1/destinations", json=hook, headers=admin).status_code == 201

            def identify(n: int, plan: str) -> None:
                event = {
                    "type": "identify",
                    "userId": "ana",
                    "traits": {"plan": plan, "email": "ana@example.com"},
                    "messageId": f"ana-{n}",
                }
                sent = http.post("/v1/batch", json={"batch": [event]}, auth=(kirana.write_key, ""))
                assert sent.status_code == 200
                kirana.drain()
                assert http.post("/v1/segments/refresh", headers=admin).status_code == 200

            identify(1, "gold")
            wait_for(lambda: receiver.accepted, what="the entry")
            # the members as sync rows too (an audience source)
            sync = {
                "name": "gold-members",
                "source": {"audience": "gold"},
                "key": "user_id",
                "destination": "crm",
                "mapping": {"email": "email"},
                "mode": "mirror",
            }
            assert http.post("/v1/syncs", json=sync, headers=admin).status_code == 201
            assert http.post("/v1/syncs/gold-members/run", headers=admin).json()["queued"] == 1
            wait_for(lambda: len(receiver.accepted) >= 2, what="the sync row")
            identify(2, "silver")
            assert http.post("/v1/syncs/gold-members/run", headers=admin).json()["deleted"] == 1
            wait_for(lambda: len(receiver.accepted) >= 4, what="the exit and the sync delete")
    finally:
        receiver.close()
    got = [(r["action"], r["key"], r["collection"], r["data"]) for r in receiver.accepted]
    assert got[0] == ("upsert", "ana", "gold", {"user": "ana", "audience": "gold"})
    assert got[1] == ("upsert", "ana", "gold-members", {"email": "ana@example.com"})
    assert sorted(got[2:]) == [
        ("delete", "ana", "gold", {"user": "ana", "audience": "gold"}),
        ("delete", "ana", "gold-members", {"email": None}),
    ]


def test_syncs_cli(kirana: RunningKirana, tmp_path) -> None:
    data = str(kirana.settings.data_dir)
    write_table(kirana.settings.lake_dir, "scores", [{"user_id": "u1", "score": 1.0}])
    runner = CliRunner()
    dest = tmp_path / "dest.json"
    dest.write_text(
        json.dumps(
            {"name": "drop", "kind": "file", "settings": {"directory": str(tmp_path / "drop")}}
        )
    )
    assert (
        runner.invoke(
            app, ["destinations", "create", "-f", str(dest), "--data-dir", data]
        ).exit_code
        == 0
    )
    spec = tmp_path / "sync.json"
    spec.write_text(
        json.dumps(
            {
                "name": "s",
                "source": {"sql": "SELECT * FROM scores"},
                "key": "user_id",
                "destination": "drop",
            }
        )
    )
    created = runner.invoke(app, ["syncs", "create", "-f", str(spec), "--data-dir", data])
    assert created.exit_code == 0, created.output
    ran = runner.invoke(app, ["syncs", "run", "s", "--data-dir", data])
    assert ran.exit_code == 0 and json.loads(ran.stdout)["queued"] == 1
    runs = runner.invoke(app, ["syncs", "runs", "s", "--data-dir", data])
    assert json.loads(runs.stdout.splitlines()[0])["status"] == "succeeded"
    listed = runner.invoke(app, ["syncs", "list", "--data-dir", data])
    assert "s\tupsert\t-> drop\tsucceeded" in listed.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"name": "t", "source": {"sql": "SELECT 1"}, "key": "k", "destination": "nowhere"}
        )
    )
    refused = runner.invoke(app, ["syncs", "create", "-f", str(bad), "--data-dir", data])
    assert refused.exit_code == 1 and "no destination named 'nowhere'" in refused.output
