"""THE compatibility test: the real GrowthBook Python SDK, fed Kirana's features payload, puts
every user in the same variation as Kirana's ``assign``, and leaves out the same users.

5,000 generated users (string, integer, float, non-ASCII and missing ids; varied targeting
attributes) are evaluated against every feature of two payloads: one with explicit flags
(force rules, rollouts, experiment rules in sequence, a stopped experiment, a holdout) and one
where every experiment is only reachable through its implicit ``exp:<key>`` feature, so each
experiment is compared for every user regardless of rule order. The SDK is used as an app
would use it: ``GrowthBook(attributes=..., features=payload["features"],
on_experiment_viewed=...)`` then ``eval_feature`` / ``get_feature_value``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from growthbook import GrowthBook, InMemoryStickyBucketService

from kirana.experiments.assignment import (
    Experiment,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
    Registry,
    assign,
    features_payload,
    holdout_feature_key,
    implicit_flag_key,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
N_USERS = 5_000
SENTINEL = "<sdk-fallback>"


def _variations(*values: Any) -> list[dict[str, Any]]:
    return [{"key": f"v{i}", "name": f"Variation {i}", "value": v} for i, v in enumerate(values)]


EXPERIMENTS = [
    Experiment(key="button-color", variations=_variations("blue", "green"), status="running"),
    Experiment(
        key="hero-copy",
        variations=_variations({"title": "A"}, {"title": "B"}, {"title": "C"}),
        weights=[0.2, 0.3, 0.5],
        coverage=0.85,
        seed="hero-2025",
        status="running",
    ),
    Experiment(
        key="layout-v1",
        variations=_variations(1, 2, 3, 4),
        weights=[0.1, 0.2, 0.3, 0.4],
        coverage=0.6,
        hash_version=1,
        status="running",
    ),
    Experiment(
        key="checkout-left",
        variations=_variations(True, False),
        namespace=("checkout", 0.0, 0.4),
        status="running",
    ),
    Experiment(
        key="checkout-right",
        variations=_variations("x", "y", "z"),
        weights=[0.5, 0.25, 0.25],
        namespace=("checkout", 0.4, 0.9),
        hash_version=1,
        seed="right-seed",
        status="running",
    ),
    Experiment(
        key="targeted",
        variations=_variations(10, 20, 30),
        hash_attribute="userId",
        targeting={"country": {"$in": ["IN", "US"]}, "age": {"$gte": 18, "$lt": 65}},
        audiences=["loyal", "vip"],
        coverage=0.9,
        status="running",
    ),
    Experiment(
        key="logic",
        variations=_variations("p", "q"),
        weights=[0.7, 0.3],
        targeting={
            "$or": [
                {"plan": "pro"},
                {"$and": [{"email": {"$exists": True}}, {"plan": {"$ne": "free"}}]},
            ],
            "$not": {"country": "DE"},
            "tags": {"$nin": ["bot"]},
            "device.os": {"$in": ["ios", "android"]},
            "age": {"$not": {"$lte": 20}},
        },
        status="running",
    ),
    Experiment(
        key="global-holdout",
        variations=[{"key": "holdout", "value": "held"}, {"key": "general", "value": "gen"}],
        weights=[0.15, 0.85],
        seed="holdout-2025",
        status="running",
    ),
    Experiment(
        key="recs-algo",
        variations=_variations("als", "ease"),
        holdout="global-holdout",
        status="running",
    ),
    Experiment(key="old-pricing", variations=_variations(9, 12), status="stopped"),
    Experiment(key="next-idea", variations=_variations("a", "b"), status="draft"),
    Experiment(
        key="ended",
        variations=_variations("a", "b"),
        status="running",
        phase_start=NOW - timedelta(days=30),
        phase_end=NOW - timedelta(days=1),
    ),
    Experiment(
        key="current-phase",
        variations=_variations("a", "b"),
        status="running",
        phase_start=NOW - timedelta(days=1),
    ),
    Experiment(key="nobody", variations=_variations(0, 1), coverage=0.0, status="running"),
]

FLAGS = [
    FeatureFlag(
        key="checkout-flow",
        default="classic",
        rules=[
            ForceRule(value="enterprise", condition={"plan": "enterprise"}),
            ForceRule(value="rollout", coverage=0.25, seed="checkout-rollout"),
            ExperimentRule(experiment="checkout-left"),
            ExperimentRule(experiment="checkout-right"),
        ],
    ),
    FeatureFlag(key="hero", default={"title": "default"}, rules=[ExperimentRule("hero-copy")]),
    FeatureFlag(
        key="layout",
        default=0,
        rules=[
            ForceRule(value=99, audiences=["vip"], coverage=0.5, hash_version=1),
            ExperimentRule("layout-v1"),
        ],
    ),
    FeatureFlag(key="pricing", default=10, rules=[ExperimentRule("old-pricing")]),
    FeatureFlag(key="recs", default="popular", rules=[ExperimentRule("recs-algo")]),
    FeatureFlag(
        key="offers",
        default=False,
        rules=[ExperimentRule("targeted"), ExperimentRule("logic"), ForceRule(value=True)],
    ),
]


def make_users(n: int, seed: int = 20250601) -> list[dict[str, Any]]:
    """Users with every kind of identifier the SDKs treat specially."""
    rng = random.Random(seed)
    users = []
    for i in range(n):
        roll = rng.random()
        attrs: dict[str, Any] = {}
        if roll < 0.80:
            attrs["id"] = f"user-{rng.getrandbits(48):012x}"
        elif roll < 0.86:
            attrs["id"] = rng.randint(1, 10**12)
        elif roll < 0.88:
            attrs["id"] = rng.randint(1, 10**6) + 0.5
        elif roll < 0.92:
            attrs["id"] = rng.choice(["ünïcødé", "用户", "🙂", "Ω"]) + f"-{i}"
        elif roll < 0.94:
            attrs["id"] = rng.choice(["", 0, True, None])
        # else: no id at all
        if rng.random() < 0.9:
            attrs["userId"] = f"u{i}"
        if rng.random() < 0.95:
            attrs["country"] = rng.choice(["IN", "US", "DE", "GB"])
        if rng.random() < 0.9:
            attrs["age"] = rng.choice([rng.randint(12, 80), "30"])
        if rng.random() < 0.9:
            attrs["plan"] = rng.choice(["free", "pro", "team", "enterprise"])
        if rng.random() < 0.5:
            attrs["email"] = f"u{i}@example.com"
        attrs["tags"] = rng.sample(["bot", "beta", "staff", "new"], rng.randint(0, 2))
        if rng.random() < 0.85:
            attrs["audiences"] = rng.sample(["loyal", "vip", "churn-risk"], rng.randint(0, 2))
        if rng.random() < 0.9:
            attrs["device"] = {"os": rng.choice(["ios", "android", "web"])}
        users.append(attrs)
    return users


FLAG_REGISTRY = Registry(EXPERIMENTS, FLAGS)
EXPERIMENT_REGISTRY = Registry(EXPERIMENTS)  # every experiment only through exp:<key>


class Tracker:
    """Records what the SDK's ``on_experiment_viewed`` callback reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str, str]] = []

    def __call__(self, experiment: Any, result: Any, user_context: Any = None) -> None:
        self.events.append((experiment.key, result.variationId, result.key, str(result.hashValue)))


def compare_feature(
    registry: Registry, key: str, attrs: dict[str, Any], gb: GrowthBook, stats: Counter[str]
) -> None:
    sdk = gb.eval_feature(key)
    if key.startswith("$holdout:"):
        a = registry.assign(key.removeprefix("$holdout:"), attrs, now=NOW)
        assert (sdk.source == "experiment") == a.in_experiment, (key, attrs)
        assert sdk.value == (a.variation_key if a.in_experiment else None)
        return
    ours = registry.evaluate(key, attrs, now=NOW)
    sdk_source = "default" if sdk.source == "defaultValue" else sdk.source
    assert (sdk_source, sdk.value) == (ours.source, ours.value), (key, attrs, ours)
    fallback_value = gb.get_feature_value(key, SENTINEL)
    assert fallback_value == (SENTINEL if ours.value is None else ours.value)
    stats[f"source:{ours.source}"] += 1
    if ours.source != "experiment":
        return
    a, r = ours.assignment, sdk.experimentResult
    assert a is not None and r is not None
    assert sdk.experiment.key == a.experiment_key
    assert r.inExperiment and r.hashUsed
    assert (r.variationId, r.key, r.hashAttribute) == (
        a.variation_index,
        a.variation_key,
        a.hash_attribute,
    )
    assert str(r.hashValue) == a.hash_value and r.bucket == a.bucket


def test_sdk_agrees_with_assign_for_every_user_and_feature() -> None:
    payloads = [
        (FLAG_REGISTRY, features_payload(FLAG_REGISTRY, now=NOW)["features"]),
        (EXPERIMENT_REGISTRY, features_payload(EXPERIMENT_REGISTRY, now=NOW)["features"]),
    ]
    stats: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    events_checked = 0
    for attrs in make_users(N_USERS):
        for registry, features in payloads:
            tracker = Tracker()
            gb = GrowthBook(attributes=attrs, features=features, on_experiment_viewed=tracker)
            for key in features:
                compare_feature(registry, key, attrs, gb, stats)
                stats["comparisons"] += 1
            # Every exposure the SDK reports is Kirana's assignment, and vice versa.
            tracked = {(k, v, vk, h) for k, v, vk, h in tracker.events}
            for exp_key, index, var_key, hash_value in tracked:
                a = registry.assign(exp_key, attrs, now=NOW)
                assert a.in_experiment and (a.variation_index, a.variation_key) == (index, var_key)
                assert a.hash_value == hash_value
                events_checked += 1
            for exp in registry.experiments.values():
                a = registry.assign(exp.key, attrs, now=NOW)
                reasons[(exp.key, a.reason)] += 1
                if registry is EXPERIMENT_REGISTRY and a.in_experiment:
                    assert (exp.key, a.variation_index, a.variation_key, a.hash_value) in tracked
    # The generated population exercises every path, in both directions.
    by_reason = Counter()
    for (_, reason), count in reasons.items():
        by_reason[reason] += count
    for reason in (
        "assigned",
        "coverage",
        "namespace",
        "not_targeted",
        "no_hash_attribute",
        "holdout",
        "not_running",
    ):
        assert by_reason[reason] > 100, (reason, by_reason)
    assert reasons[("checkout-left", "assigned")] > 500
    assert reasons[("checkout-right", "assigned")] > 500
    assert reasons[("targeted", "assigned")] > 100
    assert reasons[("logic", "assigned")] > 100
    assert reasons[("recs-algo", "holdout")] > 300
    assert reasons[("nobody", "assigned")] == 0
    assert stats["source:force"] > 1000 and stats["source:default"] > 1000
    assert stats["comparisons"] > 100_000
    assert events_checked > 50_000


def test_namespace_members_are_mutually_exclusive_in_the_sdk() -> None:
    features = features_payload(EXPERIMENT_REGISTRY, now=NOW)["features"]
    both = 0
    for attrs in make_users(2_000, seed=7):
        gb = GrowthBook(attributes=attrs, features=features)
        left = gb.eval_feature("exp:checkout-left").source == "experiment"
        right = gb.eval_feature("exp:checkout-right").source == "experiment"
        both += left and right
    assert both == 0


def test_json_round_trip_and_set_payload() -> None:
    """The payload is plain JSON and ``set_payload`` accepts it whole, as from the endpoint."""
    payload = json.loads(json.dumps(features_payload(FLAG_REGISTRY, now=NOW)))
    assert payload["status"] == 200 and payload["dateUpdated"] == "2025-06-01T12:00:00.000Z"
    gb = GrowthBook()
    gb.set_payload(payload)
    for attrs in make_users(300, seed=3):
        gb.set_attributes(attrs)
        for key in ("checkout-flow", "hero", "layout", "recs", "offers"):
            assert gb.eval_feature(key).value == FLAG_REGISTRY.evaluate(key, attrs, now=NOW).value


def test_payload_shape_and_conventions() -> None:
    features = features_payload(FLAG_REGISTRY, now=NOW)["features"]
    referenced = FLAG_REGISTRY.referenced_experiments()
    for exp in EXPERIMENTS:
        assert (implicit_flag_key(exp.key) in features) == (exp.key not in referenced)
    assert features["pricing"] == {"defaultValue": 10, "rules": []}  # stopped: default only
    assert features["exp:next-idea"] == {"defaultValue": None, "rules": []}  # draft
    assert features["exp:ended"]["rules"] == []  # phase over
    assert len(features["exp:current-phase"]["rules"]) == 1
    hold = features[holdout_feature_key("global-holdout")]["rules"][0]
    assert hold["variations"] == ["holdout", "general"]
    recs = features["recs"]["rules"][0]
    assert recs["parentConditions"] == [
        {"id": "$holdout:global-holdout", "condition": {"value": {"$ne": "holdout"}}}
    ]
    hero = features["hero"]["rules"][0]
    assert hero["key"] == "hero-copy" and hero["seed"] == "hero-2025"
    assert hero["weights"] == [0.2, 0.3, 0.5] and hero["coverage"] == 0.85
    assert hero["hashVersion"] == 2 and hero["hashAttribute"] == "id"
    assert hero["meta"][1] == {"key": "v1", "name": "Variation 1"}
    right = features["checkout-flow"]["rules"][3]
    assert right["namespace"] == ["checkout", 0.4, 0.9] and right["hashVersion"] == 1
    targeted = features["offers"]["rules"][0]["condition"]
    assert targeted["$and"][1] == {"audiences": {"$in": ["loyal", "vip"]}}
    rollout = features["checkout-flow"]["rules"][1]
    assert rollout == {
        "id": "checkout-flow#1",
        "force": "rollout",
        "coverage": 0.25,
        "hashAttribute": "id",
        "seed": "checkout-rollout",
        "hashVersion": 2,
    }


FALLBACK = Experiment(
    key="signup-banner",
    variations=_variations("a", "b", "c"),
    hash_attribute="userId",
    fallback_attribute="anonymousId",
    status="running",
)


@pytest.mark.parametrize("logged_in", [True, False])
def test_fallback_attribute_matches_sdk_with_sticky_bucketing(logged_in: bool) -> None:
    """GrowthBook SDKs use ``fallbackAttribute`` only with a sticky-bucket service; with one,
    anonymous users hash on ``anonymousId`` exactly as Kirana does."""
    registry = Registry([FALLBACK])
    features = features_payload(registry, now=NOW)["features"]
    assert features["exp:signup-banner"]["rules"][0]["fallbackAttribute"] == "anonymousId"
    in_count = 0
    for i in range(1_000):
        attrs: dict[str, Any] = {"anonymousId": f"anon-{i}"}
        if logged_in:
            attrs["userId"] = f"user-{i}"
        tracker = Tracker()
        gb = GrowthBook(
            attributes=attrs,
            features=features,
            sticky_bucket_service=InMemoryStickyBucketService(),
            on_experiment_viewed=tracker,
        )
        sdk = gb.eval_feature("exp:signup-banner")
        ours = assign(FALLBACK, attrs, now=NOW)
        assert ours.in_experiment
        assert ours.hash_attribute == ("userId" if logged_in else "anonymousId")
        assert sdk.experimentResult.variationId == ours.variation_index
        assert sdk.experimentResult.hashAttribute == ours.hash_attribute
        assert tracker.events == [
            ("signup-banner", ours.variation_index, ours.variation_key, ours.hash_value)
        ]
        in_count += 1
        if not logged_in:  # without a sticky-bucket service the SDK leaves them out
            plain = GrowthBook(attributes=attrs, features=features)
            assert plain.eval_feature("exp:signup-banner").source == "defaultValue"
    assert in_count == 1_000


def test_documented_example_parses_and_agrees_with_sdk() -> None:
    """The definition example in docs/experiments.md is valid and SDK-compatible."""
    doc = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    registry = Registry.from_dict(json.loads(example))
    now = datetime(2025, 6, 10, tzinfo=UTC)
    features = features_payload(registry, now=now)["features"]
    sources = Counter()
    for i, attrs in enumerate(make_users(1_000, seed=11)):
        attrs = {**attrs, "app_version": 40 + i % 5}
        attrs["audiences"] = [["frequent-buyers"], ["frequent-buyers", "staff"], []][i % 3]
        gb = GrowthBook(attributes=attrs, features=features)
        for key in ("checkout-flow", "exp:global-holdout-2025"):
            ours = registry.evaluate(key, attrs, now=now)
            assert gb.eval_feature(key).value == ours.value
            sources[ours.source] += 1
    assert set(sources) == {"default", "force", "experiment"}
