"""`kirana jobs`: run with progress, list, runs, show, rollback, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from tests.models.jobs_lake import demo_events, load_lake

cli = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jobs-cli")
    load_lake(path, demo_events(15))
    return path


def jobs(data_dir: Path, *args: str):
    return cli.invoke(app, ["jobs", *args, "--data-dir", str(data_dir)])


def test_run_runs_show_and_rollback(data_dir: Path) -> None:
    first = jobs(data_dir, "run", "popular", "--k", "4", "--format", "json")
    assert first.exit_code == 0, first.output
    [run] = json.loads(first.stdout)
    assert run["status"] == "succeeded" and run["parameters"]["k"] == 4
    second = jobs(data_dir, "run", "popular", "--k", "2", "--no-evaluate")
    assert second.exit_code == 0 and "\tpopular\trun\tsucceeded\tv1\t" in second.stdout

    history = json.loads(jobs(data_dir, "runs", "--job", "popular", "--format", "json").stdout)
    assert [r["output_version"] for r in history] == [1, 0]

    shown = jobs(data_dir, "show", run["run_id"])
    assert json.loads(shown.stdout)["metrics"]["output_rows"] == 4

    back = jobs(data_dir, "rollback", "popular", "--to", run["run_id"])
    assert back.exit_code == 0 and "\tpopular\trollback\tsucceeded\tv2\t" in back.stdout
    listed = {r["job"]: r for r in json.loads(jobs(data_dir, "list", "--format", "json").stdout)}
    assert listed["popular"]["current_version"] == 2
    assert listed["popular"]["output_table"] == "model_popular"
    assert listed["buy_again"]["current_run"] is None


def test_errors_say_what_to_do(data_dir: Path) -> None:
    unknown = jobs(data_dir, "run", "nope")
    assert unknown.exit_code == 1 and "no job named 'nope'; jobs: buy_again" in unknown.output
    bad = jobs(data_dir, "rollback", "popular", "--to", "r-missing")
    assert bad.exit_code == 1 and "`kirana jobs runs`" in bad.output
    missing = jobs(data_dir, "show", "r-missing")
    assert missing.exit_code == 1 and "no run 'r-missing'" in missing.output
    engine = jobs(data_dir, "run", "popular", "--engine", "gpu")
    assert engine.exit_code == 1 and "--engine must be embedded or spark" in engine.output


def test_a_failed_run_exits_non_zero(tmp_path: Path) -> None:
    out = jobs(tmp_path, "run", "buy_again")  # no lake at all
    assert out.exit_code == 1
    assert "NoOrders: no 'events' table" in out.stdout and "kirana jobs show" in out.output


def test_schedule_and_engine_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    from pydantic import ValidationError

    from kirana.config import load_settings

    monkeypatch.setenv("KIRANA_MODELS__SCHEDULE__POPULAR", "5")
    monkeypatch.setenv("KIRANA_MODELS__ENGINE", "spark")
    models = load_settings(tmp_path).models
    assert models.schedule.popular == 5 and models.engine == "spark"
    assert models.schedule.buy_again == 1440  # the rest keep their defaults
    monkeypatch.setenv("KIRANA_MODELS__ENGINE", "gpu")
    with pytest.raises(ValidationError, match=r"models\.engine"):
        load_settings(tmp_path)
