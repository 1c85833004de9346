"""Model jobs inside a live Kirana: on a schedule, and predictions on profiles via the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kirana.config import Settings, load_settings
from kirana.demo.definitions import install
from kirana.models.jobs.registry import RunRegistry, registry_path
from kirana.models.jobs.runner import JobRunner
from kirana.serving.store import ServingStore, serving_path
from tests.conftest import RunningKirana
from tests.models.jobs_lake import demo_events

TRAITS = {"predicted_orders_30d", "p_order_30d", "p_alive", "expected_spend"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Only `popular` is scheduled, every 3 s; the other jobs run on demand here."""
    schedule = {
        "buy_again": 0,
        "recommended_for_you": 0,
        "frequently_bought_together": 0,
        "popular": 0.05,
        "buying_patterns": 0,
    }
    return load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.2},
        models={"evaluate": False, "k": 5, "schedule": schedule},
    )


def _feed(kirana: RunningKirana, events: list[dict]) -> None:
    with kirana.client() as http:
        for start in range(0, len(events), 500):
            batch = events[start : start + 500]
            reply = http.post("/v1/batch", json={"batch": batch}, auth=(kirana.write_key, ""))
            assert reply.status_code == 200, reply.text
    kirana.drain()


def _wait_for_run(settings: Settings, job: str, timeout: float = 60) -> None:
    registry = RunRegistry(registry_path(settings.state_dir))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(r.status == "succeeded" for r in registry.runs(job)):
                return
            time.sleep(0.2)
    finally:
        registry.close()
    raise AssertionError(f"no succeeded {job} run within {timeout} s")


def test_scheduled_job_and_predictions_on_profiles(kirana: RunningKirana) -> None:
    assert {j for j in kirana.platform.jobs if j.startswith("models.")} == {"models.popular"}
    _feed(kirana, demo_events(15))

    # the schedule picks the new orders up by itself and publishes best sellers
    _wait_for_run(kirana.settings, "popular")
    serving = ServingStore(serving_path(kirana.settings.state_dir))
    assert len(serving.recommendations("popular", "*")) == 5
    serving.close()

    # buying patterns land on the canonical profiles as computed traits
    runner = JobRunner(kirana.settings)
    run = runner.run("buying_patterns")
    runner.close()
    assert run.status == "succeeded", run.error
    assert run.metrics["published"] == {"profiles": 15, "unmatched": 0}
    auth = {"Authorization": f"Bearer {kirana.viewer_token}"}
    with kirana.client() as http:
        profile = http.get("/v1/profiles/1", params={"type": "user_id"}, headers=auth).json()
    traits = profile["computed_traits"]
    assert traits.keys() >= TRAITS
    assert 0 <= traits["p_alive"] <= 1 and traits["expected_spend"] > 0
    assert traits["expected_next_order_date"] > "2025-12-01"
    [(lake_p_alive,)] = kirana.lake("SELECT p_alive FROM model_buying_patterns WHERE user_id = '1'")
    assert traits["p_alive"] == pytest.approx(lake_p_alive, abs=1e-6)

    # a segment refresh recomputes its own traits and leaves the predictions alone
    install(kirana.platform.profiles)
    kirana.platform.refresh_segments(full=True)
    with kirana.client() as http:
        after = http.get("/v1/profiles/1", params={"type": "user_id"}, headers=auth).json()
    assert "orders_30d" in after["computed_traits"]  # a demo definition, now computed
    assert {k: after["computed_traits"][k] for k in traits} == traits
