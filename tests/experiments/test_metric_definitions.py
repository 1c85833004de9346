"""Metric and experiment-plan definitions: what is accepted, and refusals naming the field."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.experiments.assignment import ExperimentDefinitionError
from kirana.experiments.metrics import parse_metric
from kirana.experiments.plan import parse_record


@pytest.mark.parametrize(
    ("definition", "field", "rule"),
    [
        ({"key": "r", "type": "sum", "event": "Order Completed"}, "value", "property to add up"),
        ({"key": "r", "type": "mean", "event": "E"}, "type", "one of"),
        ({"key": "r", "type": "count", "event": "E", "value": "x"}, "value", "counts events"),
        ({"key": "r", "type": "ratio", "event": "E", "value": "x"}, "denominator_event", "string"),
        ({"key": "r", "type": "count", "event": "E", "window_hours": 0}, "window_hours", "(0,"),
        ({"key": "r", "type": "sum", "event": "E", "value": "a b"}, "value", "property path"),
        ({"key": "r", "type": "sum", "event": "E", "value": ["x", "$y"]}, "value[1]", "path"),
        (
            {
                "key": "r",
                "type": "sum",
                "event": "E",
                "value": "x",
                "cap": {"type": "percentile", "value": 1.5},
            },
            "cap.value",
            "(0, 1)",
        ),
        (
            {"key": "r", "type": "binomial", "event": "E", "cap": {"type": "absolute", "value": 3}},
            "cap",
            "capping does nothing",
        ),
        ({"key": "r", "type": "count", "event": "E", "filter": {"x": [1]}}, "filter.x", "string"),
        ({"key": "r", "type": "count", "event": "E", "extra": 1}, "extra", "unknown field"),
    ],
)
def test_invalid_metrics_name_the_field(definition: dict, field: str, rule: str) -> None:
    with pytest.raises(ExperimentDefinitionError) as err:
        parse_metric(definition)
    assert err.value.field == field
    assert rule.lower() in err.value.rule.lower()
    assert str(err.value).startswith("metric 'r'")


def test_metric_defaults_and_value_fallbacks() -> None:
    metric = parse_metric(
        {"key": "revenue", "type": "sum", "event": "Order Completed", "value": ["revenue", "total"]}
    )
    assert metric.name == "revenue" and metric.window_hours == 72.0
    assert metric.value_paths == ("revenue", "total")
    assert not metric.guardrail and metric.higher_is_better


def test_plan_splits_definition_and_analysis_and_ignores_bookkeeping() -> None:
    record = parse_record(
        {
            "key": "x",
            "variations": [{"key": "a"}, {"key": "b"}],
            "metrics": ["m1", "m2"],
            "analysis": {"engine": "bayesian", "correction": "none"},
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    )
    assert record.metrics == ("m1", "m2") and record.analysis.engine == "bayesian"
    assert record.to_json()["analysis"]["engine"] == "bayesian"
    with pytest.raises(ExperimentDefinitionError) as err:
        parse_record(
            {
                "key": "x",
                "variations": [{"key": "a"}, {"key": "b"}],
                "analysis": {"engine": "bayesian"},
            }
        )
    assert err.value.field == "analysis.correction"  # holm is the frequentist default
    with pytest.raises(ExperimentDefinitionError) as err:
        parse_record(
            {"key": "x", "variations": [{"key": "a"}, {"key": "b"}], "metrics": ["m", "m"]}
        )
    assert err.value.field == "metrics"


def test_cli_creates_from_flags_and_refuses_with_the_field(tmp_path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    ok = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "--key",
            "hero",
            "--variations",
            "control,big",
            "--weights",
            "0.3,0.7",
            "--namespace",
            "home:0:0.5",
            "--start",
            *data,
        ],
    )
    assert ok.exit_code == 0, ok.output
    shown = json.loads(runner.invoke(app, ["experiments", "show", "hero", *data]).stdout)
    assert shown["status"] == "running" and shown["weights"] == [0.3, 0.7]
    assert shown["namespace"] == ["home", 0.0, 0.5]
    bad = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "--key",
            "b",
            "--variations",
            "a,b",
            "--weights",
            "0.3,0.3",
            *data,
        ],
    )
    assert bad.exit_code == 1 and "weights: must sum to 1" in bad.output
    overlap = runner.invoke(
        app,
        [
            "experiments",
            "create",
            "--key",
            "c",
            "--variations",
            "a,b",
            "--namespace",
            "home:0.4:1",
            "--start",
            *data,
        ],
    )
    assert overlap.exit_code == 1 and "overlap in namespace 'home'" in overlap.output
    listed = runner.invoke(app, ["experiments", "list", *data]).stdout
    assert "hero\trunning" in listed and "c\tdraft" in listed
    payload = json.loads(runner.invoke(app, ["experiments", "payload", *data]).stdout)
    assert payload["features"]["exp:hero"]["rules"][0]["namespace"] == ["home", 0.0, 0.5]
    dry = runner.invoke(app, ["experiments", "assign", "--user-id", "u1", *data])
    assert dry.exit_code == 0 and isinstance(json.loads(dry.stdout), list)
    not_started = runner.invoke(app, ["experiments", "report", "c", *data])
    assert not_started.exit_code == 1 and "has not started" in not_started.output


_paths = st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8})?", fullmatch=True)


@st.composite
def _metric_json(draw) -> dict:
    kind = draw(st.sampled_from(["binomial", "count", "sum", "ratio"]))
    out: dict = {
        "key": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)),
        "type": kind,
        "event": draw(st.sampled_from(["Order Completed", "Viewed"])),
    }
    if kind in ("sum", "ratio"):
        out["value"] = draw(st.one_of(_paths, st.lists(_paths, min_size=1, max_size=3)))
    if kind == "ratio":
        out["denominator_event"] = "Order Completed"
    if draw(st.booleans()):
        out["window_hours"] = draw(st.floats(0.5, 24 * 366))
    if kind != "binomial" and draw(st.booleans()):
        out["cap"] = draw(
            st.one_of(
                st.builds(lambda v: {"type": "absolute", "value": v}, st.floats(0.01, 1e6)),
                st.builds(lambda v: {"type": "percentile", "value": v}, st.floats(0.01, 0.99)),
            )
        )
    if draw(st.booleans()):
        out["filter"] = {
            draw(_paths): draw(st.one_of(st.text(max_size=5), st.integers(), st.booleans()))
        }
    return out


@given(_metric_json())
def test_metric_definitions_round_trip_through_json(data: dict) -> None:
    metric = parse_metric(data)
    again = parse_metric(json.loads(json.dumps(msgspec.to_builtins(metric))))
    assert again == metric
    assert again.value_paths == (
        (data["value"],) if isinstance(data.get("value"), str) else tuple(data.get("value") or ())
    )
