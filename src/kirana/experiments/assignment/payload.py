"""The GrowthBook SDK features payload for a :class:`Registry`.

Apps that evaluate flags in-process use any GrowthBook SDK against this payload, shaped like
the GrowthBook features endpoint: ``{"status": 200, "features": {...}, "dateUpdated": ...}``.
Each feature is ``{"defaultValue": ..., "rules": [...]}`` and each rule either forces a value
(``force``, with ``condition`` and a hashed ``coverage`` rollout) or runs an experiment
(``key``, ``variations``, ``weights``, ``coverage``, ``hashAttribute``, ``fallbackAttribute``,
``seed``, ``hashVersion``, ``namespace``, ``condition``, ``meta``, ``name``).

Three conventions map Kirana's model onto the SDKs':

* only experiments live at ``now`` (running, inside their phase window) appear as rules, so
  stopped, draft or out-of-phase experiments serve the flag's default; regenerate the payload
  when a phase starts or ends;
* an experiment that no flag references is exposed as the implicit feature ``exp:<key>``
  (default ``null``, one rule: the experiment, serving the variation values);
* an experiment used as a holdout is also exposed as ``$holdout:<key>`` (GrowthBook's prefix
  for holdouts), serving variation *keys*; every rule of an experiment under that holdout
  carries ``parentConditions: [{"id": "$holdout:<key>", "condition": {"value": {"$ne":
  "holdout"}}}]``, so the SDK skips the rule for users in the holdout arm.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from kirana.experiments.assignment.conditions import audiences_condition, combine
from kirana.experiments.assignment.definitions import (
    HOLDOUT_ARM,
    Experiment,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
)
from kirana.experiments.assignment.registry import Registry

HOLDOUT_PREFIX = "$holdout:"


def holdout_feature_key(experiment_key: str) -> str:
    """The payload feature that evaluates a holdout experiment: ``$holdout:<key>``."""
    return HOLDOUT_PREFIX + experiment_key


def _json(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _force_rule(flag: FeatureFlag, index: int, rule: ForceRule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{flag.key}#{index}", "force": _json(rule.value)}
    condition = combine(rule.condition, audiences_condition(rule.audiences))
    if condition:
        out["condition"] = _json(condition)
    if rule.coverage < 1:  # without coverage the SDK needs no hash attribute at all
        out["coverage"] = rule.coverage
        out["hashAttribute"] = rule.hash_attribute
        if rule.fallback_attribute:
            out["fallbackAttribute"] = rule.fallback_attribute
        out["seed"] = rule.seed or flag.key
        out["hashVersion"] = rule.hash_version
    return out


def _experiment_rule(rule_id: str, exp: Experiment, *, serve_keys: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rule_id,
        "key": exp.key,
        "name": exp.name,
        "variations": [v.key if serve_keys else _json(v.value) for v in exp.variations],
        "weights": list(exp.weights or ()),
        "coverage": exp.coverage,
        "hashAttribute": exp.hash_attribute,
        "seed": exp.seed,
        "hashVersion": exp.hash_version,
        "meta": [{"key": v.key, "name": v.name} for v in exp.variations],
    }
    if exp.fallback_attribute:
        out["fallbackAttribute"] = exp.fallback_attribute
    if exp.namespace is not None:
        out["namespace"] = [exp.namespace.id, exp.namespace.start, exp.namespace.end]
    condition = combine(exp.targeting, audiences_condition(exp.audiences))
    if condition:
        out["condition"] = _json(condition)
    if exp.holdout is not None:
        out["parentConditions"] = [
            {
                "id": holdout_feature_key(exp.holdout),
                "condition": {"value": {"$ne": HOLDOUT_ARM}},
            }
        ]
    return out


def _feature(flag: FeatureFlag, registry: Registry, now: datetime) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for index, rule in enumerate(flag.rules):
        if isinstance(rule, ForceRule):
            rules.append(_force_rule(flag, index, rule))
        elif isinstance(rule, ExperimentRule):
            exp = registry.experiments[rule.experiment]
            if exp.is_live(now):
                rules.append(_experiment_rule(f"{flag.key}#{index}", exp))
    return {"defaultValue": _json(flag.default), "rules": rules}


def features_payload(registry: Registry, *, now: datetime | None = None) -> dict[str, Any]:
    """The SDK payload for every flag (explicit and implicit) as of ``now`` (default: UTC now).

    Pure JSON types only, so ``json.dumps`` works as is. Feed ``payload["features"]`` to
    ``GrowthBook(features=...)`` or the whole payload to ``GrowthBook.set_payload``.
    """
    now = now or datetime.now(UTC)
    features = {
        key: _feature(flag, registry, now) for key, flag in sorted(registry.all_flags().items())
    }
    for key in sorted(registry.holdout_experiments()):
        exp = registry.experiments[key]
        rules = [_experiment_rule(holdout_feature_key(key), exp, serve_keys=True)]
        features[holdout_feature_key(key)] = {
            "defaultValue": None,
            "rules": rules if exp.is_live(now) else [],
        }
    stamp = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"status": 200, "features": features, "dateUpdated": stamp}
