"""A validated set of experiments and feature flags, checked as a whole.

Single definitions validate themselves; the rules here need the whole set: keys are unique,
flags only reference experiments that exist, holdouts exist and have a ``holdout`` arm and do
not form cycles, and running experiments sharing a namespace hold disjoint slices of it (two
running experiments claiming the same users would silently break mutual exclusion).

Every experiment that no flag references still gets an implicit flag ``exp:<key>`` whose only
rule is the experiment, so SDKs can evaluate it like any other feature; the ``exp:`` prefix is
therefore reserved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from kirana.experiments.assignment.assign import Assignment, FeatureResult, assign, evaluate_feature
from kirana.experiments.assignment.definitions import (
    HOLDOUT_ARM,
    Experiment,
    ExperimentRule,
    FeatureFlag,
    parse_experiment,
    parse_flag,
)
from kirana.experiments.assignment.validation import ExperimentDefinitionError

IMPLICIT_PREFIX = "exp:"


def implicit_flag_key(experiment_key: str) -> str:
    """The key of the flag that exposes an unreferenced experiment: ``exp:<key>``."""
    return IMPLICIT_PREFIX + experiment_key


class Registry:
    """Experiments and flags that passed every cross-definition check."""

    def __init__(
        self, experiments: Iterable[Experiment] = (), flags: Iterable[FeatureFlag] = ()
    ) -> None:
        self._experiments: dict[str, Experiment] = {}
        for exp in experiments:
            if exp.key in self._experiments:
                raise ExperimentDefinitionError(
                    "registry", "experiments", f"duplicate experiment key {exp.key!r}"
                )
            self._experiments[exp.key] = exp
        self._flags: dict[str, FeatureFlag] = {}
        for flag in flags:
            if flag.key in self._flags:
                raise ExperimentDefinitionError(
                    "registry", "flags", f"duplicate flag key {flag.key!r}"
                )
            if flag.key.startswith(IMPLICIT_PREFIX):
                raise ExperimentDefinitionError(
                    f"flag {flag.key!r}",
                    "key",
                    f"the {IMPLICIT_PREFIX!r} prefix is reserved for experiments' implicit flags",
                )
            self._flags[flag.key] = flag
        self._check_references()
        self._check_holdouts()
        self._check_namespaces()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        """Build from ``{"experiments": [...], "flags": [...]}`` (their JSON forms)."""
        return cls(
            [parse_experiment(e) for e in data.get("experiments", [])],
            [parse_flag(f) for f in data.get("flags", [])],
        )

    @property
    def experiments(self) -> Mapping[str, Experiment]:
        return MappingProxyType(self._experiments)

    @property
    def flags(self) -> Mapping[str, FeatureFlag]:
        """The explicitly defined flags (see :meth:`all_flags` for the implicit ones too)."""
        return MappingProxyType(self._flags)

    def referenced_experiments(self) -> set[str]:
        return {
            rule.experiment
            for flag in self._flags.values()
            for rule in flag.rules
            if isinstance(rule, ExperimentRule)
        }

    def holdout_experiments(self) -> set[str]:
        """Keys of experiments that some experiment uses as its holdout."""
        return {e.holdout for e in self._experiments.values() if e.holdout is not None}

    def all_flags(self) -> dict[str, FeatureFlag]:
        """Explicit flags plus ``exp:<key>`` for every experiment no flag references."""
        flags = dict(self._flags)
        referenced = self.referenced_experiments()
        for key in self._experiments:
            if key not in referenced:
                flags[implicit_flag_key(key)] = FeatureFlag(
                    key=implicit_flag_key(key),
                    default=None,
                    rules=(ExperimentRule(experiment=key),),
                    description=f"Implicit flag for experiment {key!r}",
                )
        return flags

    def assign(
        self, experiment_key: str, attributes: Mapping[str, Any], *, now: datetime | None = None
    ) -> Assignment:
        return assign(
            self._experiments[experiment_key], attributes, now=now, experiments=self._experiments
        )

    def evaluate(
        self, flag_key: str, attributes: Mapping[str, Any], *, now: datetime | None = None
    ) -> FeatureResult:
        """Evaluate an explicit flag or an implicit ``exp:<key>`` flag."""
        flag = self._flags.get(flag_key) or self.all_flags()[flag_key]
        return evaluate_feature(flag, attributes, self._experiments, now=now)

    def _check_references(self) -> None:
        for flag in self._flags.values():
            for i, rule in enumerate(flag.rules):
                if isinstance(rule, ExperimentRule) and rule.experiment not in self._experiments:
                    raise ExperimentDefinitionError(
                        f"flag {flag.key!r}",
                        f"rules[{i}].experiment",
                        f"unknown experiment {rule.experiment!r}",
                    )

    def _check_holdouts(self) -> None:
        for exp in self._experiments.values():
            if exp.holdout is None:
                continue
            where = f"experiment {exp.key!r}"
            holdout = self._experiments.get(exp.holdout)
            if holdout is None:
                raise ExperimentDefinitionError(
                    where, "holdout", f"unknown experiment {exp.holdout!r}"
                )
            if holdout.variation_index(HOLDOUT_ARM) is None:
                raise ExperimentDefinitionError(
                    where,
                    "holdout",
                    f"experiment {holdout.key!r} has no variation keyed {HOLDOUT_ARM!r}",
                )
            chain = [exp.key]
            current: Experiment | None = holdout
            while current is not None:
                if current.key in chain:
                    cycle = " -> ".join([*chain, current.key])
                    raise ExperimentDefinitionError(where, "holdout", f"holdout cycle: {cycle}")
                chain.append(current.key)
                current = self._experiments.get(current.holdout or "")

    def _check_namespaces(self) -> None:
        claims: dict[str, list[Experiment]] = {}
        for exp in self._experiments.values():
            if exp.status == "running" and exp.namespace is not None:
                claims.setdefault(exp.namespace.id, []).append(exp)
        for ns_id, exps in claims.items():
            exps.sort(key=lambda e: (e.namespace.start, e.key))  # type: ignore[union-attr]
            for i, a in enumerate(exps):
                for b in exps[i + 1 :]:
                    ra, rb = a.namespace, b.namespace
                    assert ra is not None and rb is not None
                    if ra.start < rb.end and rb.start < ra.end:
                        raise ExperimentDefinitionError(
                            "registry",
                            "namespace",
                            f"running experiments {a.key!r} [{ra.start}, {ra.end}) and "
                            f"{b.key!r} [{rb.start}, {rb.end}) overlap in namespace {ns_id!r}",
                        )
