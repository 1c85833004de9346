"""``kirana stats`` through typer's CliRunner, registered on a throwaway app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kirana.cli.stats import stats

REQUEST = {
    "metric_type": "binomial",
    "variations": [{"name": "control", "n": 1000, "sum": 100}, {"n": 1000, "sum": 130}],
}


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command()(stats)
    return app


runner = CliRunner()


def test_reads_stdin_and_prints_the_result(app: typer.Typer) -> None:
    result = runner.invoke(app, [], input=json.dumps(REQUEST))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["variations"][1]["name"] == "variation 1"
    assert out["variations"][1]["absolute"]["estimate"] == pytest.approx(0.03)
    assert 0 < out["variations"][1]["p_value"] < 0.05
    assert len(result.stdout.strip().splitlines()) == 1  # compact by default


def test_reads_a_file_and_pretty_prints(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({**REQUEST, "engine": "bayesian"}))
    result = runner.invoke(app, [str(path), "--pretty", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("{\n  ")
    assert json.loads(result.stdout)["variations"][1]["chance_to_beat_control"] > 0.95


def test_invalid_request_exits_1_naming_the_field(app: typer.Typer) -> None:
    bad = {"metric_type": "mean", "variations": [{"n": 10, "sum": 10, "sum_squares": 20}] * 2}
    bad["variations"] = [bad["variations"][0], {"n": 10, "sum": 100, "sum_squares": 20}]
    result = runner.invoke(app, ["-"], input=json.dumps(bad))
    assert result.exit_code == 1
    assert "error: variations[1].sum_squares: variance would be negative" in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], "{not json", "error: input: not valid JSON"),
        (
            ["/nonexistent/request.json"],
            None,
            "error: input: cannot read /nonexistent/request.json",
        ),
        ([], json.dumps({**REQUEST, "engine": "magic"}), "error: engine: must be one of"),
    ],
)
def test_unreadable_input_exits_1(
    app: typer.Typer, args: list[str], stdin: str | None, message: str
) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 1
    assert message in result.output


def test_help_points_at_the_request_format(app: typer.Typer) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "docs/stats.md" in result.output and "--data-dir" in result.output
