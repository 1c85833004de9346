"""Definitions and registries: invalid ones are refused with the field and the rule named;
valid ones are normalised; assignment and flag evaluation follow the documented rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from kirana.experiments.assignment import (
    Experiment,
    ExperimentDefinitionError,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
    Registry,
    assign,
    evaluate_feature,
    parse_experiment,
    parse_flag,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def exp(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": "checkout",
        "variations": [{"key": "control"}, {"key": "treatment"}],
        "status": "running",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"weights": [0.5, 0.4]}, "weights", "must sum to 1 within 1e-06 (got 0.9)"),
        ({"weights": [1.0]}, "weights", "one weight per variation (2 variations, got 1 weights)"),
        ({"weights": [1.5, -0.5]}, "weights[0]", "must be within [0, 1]"),
        ({"coverage": 1.5}, "coverage", "must be within [0, 1] (got 1.5)"),
        ({"coverage": -0.1}, "coverage", "must be within [0, 1]"),
        ({"namespace": ["ns", 0.5, 0.5]}, "namespace", "start must be below end"),
        ({"namespace": ["ns", 0.7, 0.2]}, "namespace", "start must be below end"),
        ({"namespace": ["ns", 0, 1.2]}, "namespace[2]", "must be within [0, 1]"),
        ({"namespace": ["", 0, 1]}, "namespace[0]", "non-empty string"),
        (
            {"variations": [{"key": "a"}, {"key": "b"}, {"key": "a"}]},
            "variations[2].key",
            "duplicate variation key 'a' (also variations[0])",
        ),
        ({"variations": [{"key": "only"}]}, "variations", "at least 2 variations"),
        ({"variations": [{"key": ""}, {"key": "b"}]}, "variations[0].key", "non-empty string"),
        ({"status": "paused"}, "status", "must be one of ['draft', 'running', 'stopped']"),
        ({"hash_version": 3}, "hash_version", "must be one of [1, 2]"),
        ({"key": "has space"}, "key", "whitespace"),
        ({"seed": ""}, "seed", "non-empty string"),
        ({"fallback_attribute": "id"}, "fallback_attribute", "must differ from hash_attribute"),
        ({"holdout": "checkout"}, "holdout", "cannot be its own holdout"),
        ({"audiences": ["vip", "vip"]}, "audiences", "duplicate name 'vip'"),
        ({"phase_start": datetime(2025, 1, 1)}, "phase_start", "must include a timezone"),
        (
            {"phase_start": NOW, "phase_end": NOW - timedelta(days=1)},
            "phase_end",
            "must be after phase_start",
        ),
        (
            {"variations": [{"key": "a", "value": {1, 2}}, {"key": "b"}]},
            "variations[0].value",
            "JSON",
        ),
    ],
)
def test_invalid_experiments_refused_naming_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ExperimentDefinitionError) as info:
        Experiment(**exp(**overrides))
    assert info.value.field == field, str(info.value)
    assert message in info.value.rule
    assert str(info.value) == f"{info.value.where}: {field}: {info.value.rule}"
    assert info.value.where.startswith("experiment '")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"weights": [0.5, 0.4]}, "weights", "must sum to 1"),
        ({"coverage": 1.5}, "coverage", "must be within [0, 1]"),
        ({"coverage": "all"}, "coverage", "Expected `float`, got `str`"),
        ({"status": "paused"}, "status", "Invalid enum value 'paused'"),
        ({"colour": "red"}, "(root)", "unknown field `colour`"),
        (
            {"variations": [{"key": "a"}, {"key": "a"}]},
            "variations[1].key",
            "duplicate variation key",
        ),
        ({"phase_end": "not a date"}, "phase_end", "datetime"),
    ],
)
def test_parse_experiment_errors_name_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ExperimentDefinitionError) as info:
        parse_experiment(exp(**overrides))
    assert info.value.where == "experiment 'checkout'"
    assert info.value.field == field
    assert message in info.value.rule


def test_valid_definition_is_normalised_and_round_trips() -> None:
    e = parse_experiment(
        exp(
            variations=[{"key": "a", "value": {"c": 1}}, {"key": "b"}, {"key": "c"}],
            namespace=["ns", 0, 0.5],
            phase_start="2025-01-01T00:00:00Z",
            targeting={"country": "IN"},
        )
    )
    assert e.weights == (1 / 3, 1 / 3, 1 / 3)
    assert e.seed == "checkout" and e.name == "checkout" and e.variations[1].name == "b"
    assert e.phase_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_experiment(msgspec.to_builtins(e)) == e
    direct = Experiment(**exp(weights=[0.25, 0.75], namespace=("ns", 0, 0.5)))
    assert direct.weights == (0.25, 0.75) and direct.namespace is not None


def test_flags_refuse_invalid_rules() -> None:
    with pytest.raises(ExperimentDefinitionError, match=r"rules\[0\]\.coverage: must be within"):
        parse_flag({"key": "f", "rules": [{"type": "force", "value": 1, "coverage": 2}]})
    with pytest.raises(ExperimentDefinitionError, match=r"rules\[0\]\.type"):
        parse_flag({"key": "f", "rules": [{"type": "rollout", "value": 1}]})
    with pytest.raises(ExperimentDefinitionError, match="value: must not be null"):
        ForceRule(value=None)
    with pytest.raises(ExperimentDefinitionError, match="key: must not contain whitespace"):
        FeatureFlag(key="$holdout:x")


def running(key: str, **overrides: Any) -> Experiment:
    return Experiment(**exp(key=key, **overrides))


def test_registry_refuses_overlapping_namespaces_naming_both() -> None:
    a = running("exp-a", namespace=["checkout", 0, 0.5])
    b = running("exp-b", namespace=["checkout", 0.4, 1])
    with pytest.raises(ExperimentDefinitionError) as info:
        Registry([a, b])
    message = str(info.value)
    assert info.value.field == "namespace"
    assert "'exp-a' [0.0, 0.5)" in message and "'exp-b' [0.4, 1.0)" in message
    assert "namespace 'checkout'" in message
    # Adjacent slices, other namespaces and stopped experiments do not conflict.
    c = running("exp-c", namespace=["checkout", 0.5, 1])
    d = running("exp-d", namespace=["search", 0, 1])
    e = running("exp-e", namespace=["checkout", 0, 1], status="stopped")
    assert len(Registry([a, c, d, e]).experiments) == 4


def test_registry_refuses_unknown_references_and_duplicates() -> None:
    a = running("exp-a")
    flag = FeatureFlag(key="f", rules=[ForceRule(value=1), ExperimentRule("nope")])
    with pytest.raises(ExperimentDefinitionError) as info:
        Registry([a], [flag])
    assert (info.value.where, info.value.field) == ("flag 'f'", "rules[1].experiment")
    assert "unknown experiment 'nope'" in info.value.rule
    with pytest.raises(ExperimentDefinitionError, match="duplicate experiment key 'exp-a'"):
        Registry([a, a])
    with pytest.raises(ExperimentDefinitionError, match="duplicate flag key 'f'"):
        Registry([a], [FeatureFlag(key="f"), FeatureFlag(key="f")])
    with pytest.raises(ExperimentDefinitionError, match="reserved"):
        Registry([a], [FeatureFlag(key="exp:a")])
    with pytest.raises(ExperimentDefinitionError, match="holdout: unknown experiment 'gh'"):
        Registry([running("x", holdout="gh")])
    with pytest.raises(ExperimentDefinitionError, match="no variation keyed 'holdout'"):
        Registry([running("x", holdout="gh"), running("gh")])
    ring = [
        running("p", holdout="q", variations=[{"key": "holdout"}, {"key": "g"}]),
        running("q", holdout="p", variations=[{"key": "holdout"}, {"key": "g"}]),
    ]
    with pytest.raises(ExperimentDefinitionError, match="holdout cycle: p -> q -> p"):
        Registry(ring)


def test_registry_from_dict() -> None:
    registry = Registry.from_dict(
        {
            "experiments": [exp()],
            "flags": [
                {
                    "key": "f",
                    "default": 1,
                    "rules": [{"type": "experiment", "experiment": "checkout"}],
                }
            ],
        }
    )
    assert set(registry.all_flags()) == {"f"}
    assert registry.evaluate("f", {"id": "u1"}).source == "experiment"


def test_assign_reasons() -> None:
    base = running("e", targeting={"plan": "pro"}, coverage=0.5)
    assert assign(base, {"plan": "free", "id": "x"}).reason == "not_targeted"
    assert assign(base, {"plan": "pro"}).reason == "no_hash_attribute"
    assert assign(base, {"plan": "pro", "id": True}).reason == "no_hash_attribute"
    reasons = {assign(base, {"plan": "pro", "id": f"u{i}"}).reason for i in range(200)}
    assert reasons == {"assigned", "coverage"}
    stopped = Experiment(**exp(status="stopped"))
    assert assign(stopped, {"id": "u"}).reason == "not_running"
    phased = running("p", phase_start=NOW, phase_end=NOW + timedelta(days=7))
    assert assign(phased, {"id": "u"}, now=NOW - timedelta(seconds=1)).reason == "not_running"
    assert assign(phased, {"id": "u"}, now=NOW).in_experiment
    assert assign(phased, {"id": "u"}, now=NOW + timedelta(days=7)).reason == "not_running"
    a = assign(base, {"plan": "pro", "id": 42})
    assert a.hash_value == "42" and a.hash_attribute == "id"


def test_holdout_and_feature_evaluation() -> None:
    holdout = running("gh", variations=[{"key": "holdout"}, {"key": "general"}], weights=[0.5, 0.5])
    inner = running(
        "inner", holdout="gh", variations=[{"key": "a", "value": 1}, {"key": "b", "value": 2}]
    )
    flag = FeatureFlag(
        key="f",
        default=0,
        rules=[
            ForceRule(value=99, condition={"plan": "enterprise"}),
            ExperimentRule("inner"),
            ForceRule(value=-1, audiences=["vip"]),
        ],
    )
    registry = Registry([holdout, inner], [flag])
    with pytest.raises(ExperimentDefinitionError, match="pass experiments="):
        assign(inner, {"id": "u"})
    sources = set()
    for i in range(400):
        attrs = {"id": f"u{i}", "audiences": ["vip"] if i % 2 else []}
        in_holdout = registry.assign("gh", attrs).variation_key == "holdout"
        a = registry.assign("inner", attrs)
        assert (a.reason == "holdout") == in_holdout
        result = evaluate_feature(flag, attrs, registry.experiments)
        if in_holdout:
            assert result.value == (-1 if i % 2 else 0)
        else:
            assert result.source == "experiment" and result.assignment == a
        sources.add(result.source)
    assert sources == {"experiment", "force", "default"}
    assert registry.evaluate("f", {"plan": "enterprise"}).value == 99
