"""Deterministic assignment of users to experiments, and feature-flag evaluation.

``assign`` follows the GrowthBook SDKs' order and arithmetic, so a user gets the same
variation here as in any SDK fed :func:`~kirana.experiments.assignment.payload.features_payload`
(the test suite checks this against the real Python SDK). Steps, with the ``reason`` recorded
when a user is left out:

1. ``not_running`` - status is not ``running``, or ``now`` is outside the phase window;
2. ``holdout`` - the experiment's global holdout put the user in its ``holdout`` arm;
3. ``not_targeted`` - the targeting condition or the audiences do not match;
4. ``no_hash_attribute`` - neither the hash attribute nor the fallback identifies the user;
5. ``namespace`` - the user's namespace hash is outside the experiment's slice;
6. ``coverage`` - the user's hash falls in the gap that coverage < 1 leaves in each range.

Excluded users get no variation; :func:`evaluate_feature` then falls through to the next rule
and finally the flag's default, exactly as the SDKs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from kirana.experiments.assignment.conditions import audiences_condition, eval_condition
from kirana.experiments.assignment.definitions import (
    HOLDOUT_ARM,
    Experiment,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
)
from kirana.experiments.assignment.hashing import (
    bucket_ranges,
    choose_variation,
    gb_hash,
    in_namespace,
    resolve_hash_value,
)
from kirana.experiments.assignment.validation import ExperimentDefinitionError

Reason = Literal[
    "assigned",
    "not_running",
    "holdout",
    "not_targeted",
    "no_hash_attribute",
    "namespace",
    "coverage",
]
Source = Literal["default", "force", "experiment"]


class Assignment(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of :func:`assign`: a variation when ``in_experiment``, else a ``reason``."""

    experiment_key: str
    in_experiment: bool
    reason: Reason
    variation_index: int | None = None
    variation_key: str | None = None
    value: Any = None
    hash_attribute: str = "id"
    hash_value: str = ""
    bucket: float | None = None


class FeatureResult(msgspec.Struct, frozen=True, kw_only=True):
    """The value of a flag for a user, which rule produced it and, for experiment rules, the
    assignment (the thing to log as an exposure)."""

    key: str
    value: Any
    source: Source
    rule_index: int | None = None
    assignment: Assignment | None = None


def _matches(
    attributes: Mapping[str, Any], condition: Mapping[str, Any] | None, audiences: tuple[str, ...]
) -> bool:
    if condition and not eval_condition(attributes, condition):
        return False
    aud = audiences_condition(audiences)
    return aud is None or eval_condition(attributes, aud)


def assign(
    experiment: Experiment,
    attributes: Mapping[str, Any],
    *,
    now: datetime | None = None,
    experiments: Mapping[str, Experiment] | None = None,
) -> Assignment:
    """Assign one user (``attributes``) to ``experiment``; pure and deterministic.

    ``experiments`` is needed only to resolve ``experiment.holdout`` (pass the registry's
    experiments). ``now`` defaults to the current UTC time and only matters when the experiment
    has a phase window.
    """
    exp = experiment
    hash_attr, hash_value = resolve_hash_value(
        attributes, exp.hash_attribute, exp.fallback_attribute
    )

    def out(reason: Reason) -> Assignment:
        return Assignment(
            experiment_key=exp.key,
            in_experiment=False,
            reason=reason,
            hash_attribute=hash_attr,
            hash_value=hash_value,
        )

    if exp.status != "running":
        return out("not_running")
    has_phase = exp.phase_start is not None or exp.phase_end is not None
    if has_phase and not exp.is_live(now or datetime.now(UTC)):
        return out("not_running")
    if exp.holdout is not None and _held_out(exp, attributes, now, experiments):
        return out("holdout")
    if not _matches(attributes, exp.targeting, exp.audiences):
        return out("not_targeted")
    if not hash_value:
        return out("no_hash_attribute")
    if exp.namespace is not None:
        ns = exp.namespace
        if not in_namespace(hash_value, ns.id, ns.start, ns.end):
            return out("namespace")
    assert exp.seed is not None  # normalised by the definition
    n = gb_hash(exp.seed, hash_value, exp.hash_version)
    index = choose_variation(n, bucket_ranges(len(exp.variations), exp.coverage, exp.weights))
    if index < 0:
        return out("coverage")
    variation = exp.variations[index]
    return Assignment(
        experiment_key=exp.key,
        in_experiment=True,
        reason="assigned",
        variation_index=index,
        variation_key=variation.key,
        value=variation.value,
        hash_attribute=hash_attr,
        hash_value=hash_value,
        bucket=n,
    )


def _held_out(
    exp: Experiment,
    attributes: Mapping[str, Any],
    now: datetime | None,
    experiments: Mapping[str, Experiment] | None,
) -> bool:
    holdout = (experiments or {}).get(exp.holdout or "")
    if holdout is None:
        raise ExperimentDefinitionError(
            f"experiment {exp.key!r}",
            "holdout",
            f"unknown experiment {exp.holdout!r} (pass experiments= to resolve holdouts)",
        )
    result = assign(holdout, attributes, now=now, experiments=experiments)
    return result.in_experiment and result.variation_key == HOLDOUT_ARM


def _force_applies(flag: FeatureFlag, rule: ForceRule, attributes: Mapping[str, Any]) -> bool:
    if not _matches(attributes, rule.condition, rule.audiences):
        return False
    if rule.coverage >= 1:
        return True  # no rollout: the SDK payload carries no coverage, so no hash is needed
    if rule.coverage <= 0:
        return False
    _, hash_value = resolve_hash_value(attributes, rule.hash_attribute, rule.fallback_attribute)
    if not hash_value:
        return False
    return gb_hash(rule.seed or flag.key, hash_value, rule.hash_version) < rule.coverage


def evaluate_feature(
    flag: FeatureFlag,
    attributes: Mapping[str, Any],
    experiments: Mapping[str, Experiment],
    *,
    now: datetime | None = None,
) -> FeatureResult:
    """Evaluate ``flag`` for one user: the first rule that applies wins, else the default.

    A force rule applies when its targeting matches and the user is inside its rollout
    coverage; an experiment rule applies when :func:`assign` puts the user in the experiment
    (stopped, draft and out-of-phase experiments never do, so their flags serve the default).
    """
    for index, rule in enumerate(flag.rules):
        if isinstance(rule, ForceRule):
            if _force_applies(flag, rule, attributes):
                return FeatureResult(
                    key=flag.key, value=rule.value, source="force", rule_index=index
                )
            continue
        assert isinstance(rule, ExperimentRule)
        experiment = experiments.get(rule.experiment)
        if experiment is None:
            raise ExperimentDefinitionError(
                f"flag {flag.key!r}",
                f"rules[{index}].experiment",
                f"unknown experiment {rule.experiment!r}",
            )
        assignment = assign(experiment, attributes, now=now, experiments=experiments)
        if assignment.in_experiment:
            return FeatureResult(
                key=flag.key,
                value=assignment.value,
                source="experiment",
                rule_index=index,
                assignment=assignment,
            )
    return FeatureResult(key=flag.key, value=flag.default, source="default")
