"""Server-side experiments in the personalise API.

An experiment changes what ``GET /v1/personalize`` serves when its variations' values
carry a ``personalize`` section::

    {"personalize": {"placement": "home_feed", "policy": "popularity"}}

``placement`` (a name or a list; absent: every placement) says where the experiment
applies and ``policy`` which ranking policy the variation uses (``thompson``,
``popularity``, ``uniform``; absent: the default). A user is assigned with the same
GrowthBook-compatible hashing as everywhere else (so the SDKs agree), and an
``Experiment Viewed`` exposure is logged once per user and experiment — only when the
request is for a placement the experiment applies to, because only then does the user
see the variation. Experiments without such a section are left to the apps' SDKs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kirana.serving.profiles import ResolvedUser
from kirana.serving.responses import Assignment

if TYPE_CHECKING:
    from kirana.experiments.platform import Experiments
    from kirana.runtime import Platform


def personalize_section(value: Any) -> Mapping[str, Any] | None:
    """The ``personalize`` part of a variation's value, if it has one."""
    if isinstance(value, Mapping):
        section = value.get("personalize")
        if isinstance(section, Mapping):
            return section
    return None


def applies_to(section: Mapping[str, Any], placement: str) -> bool:
    wanted = section.get("placement")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted == placement
    return placement in wanted


class PersonalizeExperiments:
    """The personalise API's :class:`~kirana.serving.personalize.ExperimentAssigner`."""

    def __init__(self, platform: Platform, recheck_seconds: float = 0.5) -> None:
        self._platform = platform
        self._recheck = recheck_seconds
        self._checked_at = -float("inf")
        self._revision: int | None = None
        self._relevant: dict[str, list[Mapping[str, Any]]] = {}

    def _experiments(self) -> Experiments:
        from kirana.experiments.platform import experiments

        return experiments(self._platform)

    def _sections(self, exps: Experiments) -> dict[str, list[Mapping[str, Any]]]:
        """Running experiments with a personalise section, per registry revision; the
        stored revision is read at most every ``recheck_seconds`` (a query per request
        would be most of an uninterested request's cost)."""
        now = time.monotonic()
        if now - self._checked_at < self._recheck:
            return self._relevant
        self._checked_at = now
        revision = exps.service.revision()
        if revision != self._revision:
            registry = exps.service.registry()
            relevant: dict[str, list[Mapping[str, Any]]] = {}
            for key, experiment in registry.experiments.items():
                if experiment.status != "running":
                    continue
                sections = [
                    s
                    for s in (personalize_section(v.value) for v in experiment.variations)
                    if s is not None
                ]
                if sections:
                    relevant[key] = sections
            self._relevant, self._revision = relevant, revision
        return self._relevant

    def wants_traits(self, placement: str) -> bool:
        """Whether a running experiment applies at ``placement`` (then targeting needs the
        user's traits; otherwise the personalise API skips reading them)."""
        relevant = self._sections(self._experiments())
        return any(any(applies_to(s, placement) for s in ss) for ss in relevant.values())

    def __call__(self, user: ResolvedUser, placement: str) -> list[Assignment]:
        exps = self._experiments()
        relevant = self._sections(exps)
        if not any(any(applies_to(s, placement) for s in ss) for ss in relevant.values()):
            return []
        from kirana.experiments.exposures import user_attributes

        attributes = user_attributes(
            user.profile_user_id or user.user_id,
            user.anonymous_id,
            profile={**user.traits, **user.computed, "audiences": sorted(user.audiences)},
        )
        chosen = []
        for exposure in exps.assigner.assign(attributes):
            if exposure.experiment not in relevant:
                continue
            section = personalize_section(exposure.value)
            if section is None:  # this variation keeps the default; the experiment still applies
                if any(applies_to(s, placement) for s in relevant[exposure.experiment]):
                    chosen.append((exposure, None))
                continue
            if applies_to(section, placement):
                chosen.append((exposure, section.get("policy")))
        if not chosen:
            return []
        exps.assigner.log_exposures(
            [x for x, _ in chosen], attributes, context={"placement": placement}
        )
        return [Assignment(x.experiment, x.variation, policy) for x, policy in chosen]
