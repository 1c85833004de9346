"""The model-jobs API: jobs, run history, one run, and rollback (admin only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kirana.config import Settings, load_settings
from kirana.models.jobs.runner import JobRunner
from kirana.serving.store import ServingStore, serving_path
from tests.conftest import RunningKirana
from tests.models.jobs_lake import demo_events, load_lake


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    load_lake(tmp_path / "data", demo_events(10))
    return load_settings(tmp_path / "data", models={"evaluate": False, "k": 3})


def test_runs_and_rollback_over_http(kirana: RunningKirana) -> None:
    runner = JobRunner(kirana.settings)
    first = runner.run("popular")
    kirana.settings.models.k = 1
    second = runner.run("popular")
    runner.close()
    viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        jobs = {j["job"]: j for j in http.get("/v1/models/jobs", headers=viewer).json()}
        assert jobs["popular"]["current"]["run_id"] == second.run_id
        assert jobs["popular"]["output_table"] == "model_popular"
        runs = http.get("/v1/models/runs", params={"job": "popular"}, headers=viewer).json()
        assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
        one = http.get(f"/v1/models/runs/{first.run_id}", headers=viewer).json()
        assert one["parameters"]["k"] == 3 and one["data_version"] == first.data_version

        url = "/v1/models/outputs/popular/rollback"
        assert http.post(url, json={"to_run": first.run_id}, headers=viewer).status_code == 403
        bad = http.post(url, json={"to_run": "r-nope"}, headers=admin)
        assert bad.status_code == 422 and "`to_run`: no run 'r-nope'" in bad.json()["message"]
        ok = http.post(url, json={"to_run": first.run_id}, headers=admin)
        assert ok.status_code == 200 and ok.json()["rolled_back_to"] == first.run_id
        assert (
            http.get("/v1/models/runs", params={"job": "nope"}, headers=viewer).status_code == 404
        )
        assert http.get("/v1/models/runs/r-nope", headers=viewer).status_code == 404
    serving = ServingStore(serving_path(kirana.settings.state_dir))
    assert len(serving.recommendations("popular", "*")) == 3
    assert serving.versions()["popular"][0] == first.run_id
    serving.close()
