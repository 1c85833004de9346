"""Experiment and feature-flag definitions with deterministic, GrowthBook-compatible assignment.

Pure modules, no I/O: :mod:`.definitions` (validated Structs), :mod:`.registry` (whole-set
checks), :mod:`.hashing` (the SDKs' hash and bucketing arithmetic), :mod:`.conditions`
(targeting), :mod:`.assign` (assignment and flag evaluation) and :mod:`.payload` (the SDK
features payload). ``docs/experiments.md`` describes the formats and rules.
"""

from kirana.experiments.assignment.assign import (
    Assignment,
    FeatureResult,
    Reason,
    assign,
    evaluate_feature,
)
from kirana.experiments.assignment.conditions import eval_condition
from kirana.experiments.assignment.definitions import (
    Experiment,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
    Namespace,
    Variation,
    parse_experiment,
    parse_flag,
)
from kirana.experiments.assignment.hashing import (
    bucket_ranges,
    choose_variation,
    fnv1a32,
    gb_hash,
    in_namespace,
    in_range,
)
from kirana.experiments.assignment.payload import features_payload, holdout_feature_key
from kirana.experiments.assignment.registry import Registry, implicit_flag_key
from kirana.experiments.assignment.validation import ExperimentDefinitionError

__all__ = [
    "Assignment",
    "Experiment",
    "ExperimentDefinitionError",
    "ExperimentRule",
    "FeatureFlag",
    "FeatureResult",
    "ForceRule",
    "Namespace",
    "Reason",
    "Registry",
    "Variation",
    "assign",
    "bucket_ranges",
    "choose_variation",
    "eval_condition",
    "evaluate_feature",
    "features_payload",
    "fnv1a32",
    "gb_hash",
    "holdout_feature_key",
    "implicit_flag_key",
    "in_namespace",
    "in_range",
    "parse_experiment",
    "parse_flag",
]
