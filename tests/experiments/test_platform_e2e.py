"""End to end on a real server: create metrics and experiments -> assign through the API ->
exposures land in the lake once per user -> conversions through /v1/batch -> the report finds
the planted lift (and nothing in an A/A test run on the same users), over the API and the CLI.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from tests.conftest import RunningKirana

N_USERS = 1000
BASE_RATE, TREATED_RATE = 0.25, 0.40  # planted relative lift on purchase: +60%
TRUE_LIFT = TREATED_RATE / BASE_RATE - 1

METRICS = {
    "purchase": {"type": "binomial", "event": "Order Completed", "window_hours": 72},
    "orders": {"type": "count", "event": "Order Completed"},
    "revenue": {
        "type": "sum",
        "event": "Order Completed",
        "value": ["revenue", "total"],
        "cap": {"type": "percentile", "value": 0.99},
    },
    "aov": {
        "type": "ratio",
        "event": "Order Completed",
        "value": ["revenue", "total"],
        "denominator_event": "Order Completed",
        "guardrail": True,
    },
}


def _stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _send(kirana: RunningKirana, events: list[dict]) -> None:
    with kirana.client() as client:
        for i in range(0, len(events), 200):
            response = client.post(
                "/v1/batch", json={"batch": events[i : i + 200]}, auth=(kirana.write_key, "")
            )
            assert response.status_code == 200 and response.json()["accepted"] == len(
                events[i : i + 200]
            ), response.text


@pytest.mark.slow
def test_planted_lift_is_found_and_aa_shows_nothing(kirana: RunningKirana, tmp_path) -> None:
    admin = kirana.client()
    admin.headers["Authorization"] = f"Bearer {kirana.admin_token}"
    for key, body in METRICS.items():
        assert admin.put(f"/v1/metrics/{key}", json=body).status_code == 200, key
    arms = [{"key": "control"}, {"key": "treatment"}]
    for key in ("checkout", "aa-test"):
        body = {"key": key, "variations": arms, "metrics": list(METRICS), "seed": f"{key}-1"}
        assert admin.post("/v1/experiments", json=body).status_code == 201
        assert admin.post(f"/v1/experiments/{key}/start").status_code == 200

    rng = random.Random(2026)
    past = datetime.now(UTC) - timedelta(days=3)
    history, assigned = [], {}
    server = kirana.client()
    server.headers["X-Write-Key"] = kirana.write_key
    for i in range(N_USERS):
        user = f"user-{i}"
        if rng.random() < 0.4:  # a returning customer with an order before the experiment
            history.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": user,
                    "timestamp": _stamp(past),
                    "properties": {"total": 20 + 10 * rng.random()},
                }
            )
        device = {"device": {"type": rng.choice(["ios", "android"])}}
        calls = 2 if i % 3 == 0 else 1  # repeat visits must not log a second exposure
        for _ in range(calls):
            response = server.post(
                "/v1/experiments/assign", json={"userId": user, "context": device}
            )
            assert response.status_code == 200, response.text
        assigned[user] = {
            a["experiment_id"]: a["variation_id"] for a in response.json()["assignments"]
        }
    _send(kirana, history)

    conversions = []
    now = datetime.now(UTC)
    for user, variations in assigned.items():
        rate = TREATED_RATE if variations["checkout"] == "treatment" else BASE_RATE
        if rng.random() < rate:
            for _ in range(rng.choice([1, 1, 2])):
                conversions.append(
                    {
                        "type": "track",
                        "event": "Order Completed",
                        "userId": user,
                        "timestamp": _stamp(now),
                        "properties": {"revenue": 20 + 30 * rng.random()},
                    }
                )
    _send(kirana, conversions)
    kirana.drain()

    per_user = kirana.lake(
        "SELECT json_extract_string(properties, '$.experiment_id') AS exp, user_id, count(*) "
        "FROM events WHERE event = 'Experiment Viewed' GROUP BY ALL"
    )
    assert len(per_user) == 2 * N_USERS
    assert {row[2] for row in per_user} == {1}

    viewer = kirana.client()
    viewer.headers["Authorization"] = f"Bearer {kirana.viewer_token}"
    report = viewer.get("/v1/experiments/checkout/report", params={"refresh": True}).json()
    users = {v["key"]: v["users"] for v in report["variations"]}
    expected = {k: sum(1 for a in assigned.values() if a["checkout"] == k) for k in users}
    assert users == expected and sum(users.values()) == N_USERS
    assert report["srm"]["mismatch"] is False
    rows = {(r["metric"], r["variation"]): r for r in report["summary"]}
    purchase = rows[("purchase", "treatment")]
    lo, hi = purchase["relative_ci"]
    assert lo < TRUE_LIFT < hi and lo > 0, purchase
    assert purchase["verdict"] == "better" and purchase["p_value_adjusted"] < 0.01
    assert {m["key"]: m["cuped"] for m in report["metrics"]} == {
        "purchase": True,
        "orders": True,
        "revenue": True,
        "aov": False,
    }
    assert set(report["dimensions"]["platform"]) == {"ios", "android"}
    assert set(report["dimensions"]["user_type"]) == {"new", "returning"}
    series = report["cumulative"]["purchase"]
    assert series[-1]["users"] == users
    assert (
        series[-1]["variations"]["treatment"]["relative"]["estimate"] == purchase["relative_lift"]
    )

    # the report is stored: a plain GET serves it again; the scheduled job recomputes it
    again = viewer.get("/v1/experiments/checkout/report").json()
    assert again["analysed_at"] == report["analysed_at"]
    from kirana.experiments.analyse import refresh_reports
    from kirana.experiments.extension import attach
    from kirana.experiments.platform import experiments

    assert refresh_reports(kirana.settings, experiments(kirana.platform).service) == {
        "checkout": "ok",
        "aa-test": "ok",
    }
    newer = viewer.get("/v1/experiments/checkout/report").json()
    assert newer["analysed_at"] > report["analysed_at"]
    assert newer["summary"][0]["relative_lift"] == report["summary"][0]["relative_lift"]
    attach(kirana.platform)
    assert kirana.platform.jobs["experiment-reports"].every_seconds == 3600

    aa = viewer.get("/v1/experiments/aa-test/report", params={"refresh": True}).json()
    assert all(r["verdict"] == "inconclusive" for r in aa["summary"]), aa["summary"]

    png = viewer.get("/v1/experiments/checkout/plots/purchase.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert viewer.get("/v1/experiments/checkout/lift.png").content.startswith(b"\x89PNG")
    assert viewer.get("/v1/experiments/checkout/plots/nope.png").status_code == 404

    # the CLI reads the same state and lake
    runner = CliRunner()
    data_dir = str(kirana.settings.data_dir)
    out = runner.invoke(
        app,
        [
            "experiments",
            "report",
            "checkout",
            "--format",
            "json",
            "--plots",
            str(tmp_path),
            "--data-dir",
            data_dir,
        ],
    )
    assert out.exit_code == 0, out.output
    cli_report = json.loads(out.stdout)
    assert cli_report["summary"][0]["relative_lift"] == report["summary"][0]["relative_lift"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        ["lift.png", *(f"{m}.png" for m in METRICS)]
    )
    table = runner.invoke(app, ["experiments", "report", "checkout", "--data-dir", data_dir])
    assert "purchase" in table.stdout and "better" in table.stdout
