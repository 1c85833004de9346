"""Typed, validated experiment and feature-flag definitions.

Definitions are frozen msgspec Structs: cheap to build, immutable once validated, and
decodable straight from JSON with :func:`parse_experiment` / :func:`parse_flag`. Every
constructor validates and normalises (lists become tuples, omitted weights become equal
weights, an omitted seed becomes the key, an omitted name becomes the key), so an object that
exists is one Kirana and the GrowthBook SDKs will both accept and evaluate identically.
Cross-definition rules (unknown references, overlapping namespaces, duplicate keys) live in
:mod:`kirana.experiments.assignment.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
from msgspec.structs import force_setattr

from kirana.experiments.assignment.hashing import equal_weights
from kirana.experiments.assignment.validation import Checker, ExperimentDefinitionError, convert

Status = Literal["draft", "running", "stopped"]
STATUSES: tuple[str, ...] = ("draft", "running", "stopped")
HOLDOUT_ARM = "holdout"

_Struct = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class Namespace(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A slice ``[start, end)`` of a namespace; JSON form ``["checkout", 0, 0.5]`` as in
    GrowthBook. Running experiments holding disjoint slices never share a user."""

    id: str
    start: float
    end: float


class Variation(msgspec.Struct, **_Struct):
    """One arm: a unique ``key`` (reported to analytics), a display ``name`` and the JSON
    ``value`` served to the user."""

    key: str
    name: str = ""
    value: Any = None

    def __post_init__(self) -> None:
        check = Checker(f"variation {self.key!r}")
        check.key("key", self.key)
        if not isinstance(self.name, str):
            raise check.fail("name", f"must be a string, got {self.name!r}")
        force_setattr(self, "name", self.name or self.key)
        check.json("value", self.value)


class Experiment(msgspec.Struct, **_Struct):
    """An experiment definition; see ``docs/experiments.md`` for every field's meaning."""

    key: str
    variations: tuple[Variation, ...]
    name: str = ""
    weights: tuple[float, ...] | None = None
    coverage: float = 1.0
    hash_attribute: str = "id"
    fallback_attribute: str | None = None
    seed: str | None = None
    hash_version: int = 2
    namespace: Namespace | None = None
    targeting: dict[str, Any] | None = None
    audiences: tuple[str, ...] = ()
    status: Status = "draft"
    phase_start: datetime | None = None
    phase_end: datetime | None = None
    holdout: str | None = None

    def __post_init__(self) -> None:
        _validate_experiment(self)

    def is_live(self, now: datetime) -> bool:
        """Running, and ``now`` inside the phase window ``[phase_start, phase_end)``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
        if self.status != "running":
            return False
        if self.phase_start is not None and now < self.phase_start:
            return False
        return self.phase_end is None or now < self.phase_end

    def variation_index(self, key: str) -> int | None:
        return next((i for i, v in enumerate(self.variations) if v.key == key), None)


class ForceRule(msgspec.Struct, tag="force", tag_field="type", **_Struct):
    """Serve ``value`` to users matching ``condition``/``audiences``, optionally to only a
    hashed ``coverage`` share of them (a percentage rollout; the seed defaults to the flag key).
    """

    value: Any
    condition: dict[str, Any] | None = None
    audiences: tuple[str, ...] = ()
    coverage: float = 1.0
    hash_attribute: str = "id"
    fallback_attribute: str | None = None
    seed: str | None = None
    hash_version: int = 2

    def __post_init__(self) -> None:
        check = Checker("force rule")
        if self.value is None:
            raise check.fail("value", "must not be null (GrowthBook SDKs skip a rule forcing null)")
        check.json("value", self.value)
        force_setattr(self, "condition", check.condition("condition", self.condition))
        force_setattr(self, "audiences", check.names("audiences", self.audiences))
        force_setattr(self, "coverage", check.unit_interval("coverage", self.coverage))
        check.text("hash_attribute", self.hash_attribute)
        check.text("fallback_attribute", self.fallback_attribute, optional=True)
        check.text("seed", self.seed, optional=True)
        check.hash_version("hash_version", self.hash_version)


class ExperimentRule(
    msgspec.Struct, tag="experiment", tag_field="type", frozen=True, forbid_unknown_fields=True
):
    """Serve the value of the user's variation in the referenced experiment, if they are in it;
    otherwise fall through to the next rule."""

    experiment: str

    def __post_init__(self) -> None:
        Checker("experiment rule").key("experiment", self.experiment)


Rule = ForceRule | ExperimentRule


class FeatureFlag(msgspec.Struct, **_Struct):
    """A feature flag: the first matching rule decides the value, else ``default``."""

    key: str
    default: Any = None
    rules: tuple[Rule, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        check = Checker(f"flag {self.key!r}")
        check.text("key", self.key)
        if any(c.isspace() for c in self.key) or self.key.startswith("$"):
            raise check.fail("key", f"must not contain whitespace or start with '$': {self.key!r}")
        check.json("default", self.default)
        rules = []
        for i, rule in enumerate(_seq(check, "rules", self.rules)):
            rules.append(_coerce(check, f"rules[{i}]", rule, Rule))  # type: ignore[arg-type]
        force_setattr(self, "rules", tuple(rules))


def _validate_experiment(exp: Experiment) -> None:
    check = Checker(f"experiment {exp.key!r}")
    check.key("key", exp.key)
    if not isinstance(exp.name, str):
        raise check.fail("name", f"must be a string, got {exp.name!r}")
    force_setattr(exp, "name", exp.name or exp.key)
    variations = tuple(
        _coerce(check, f"variations[{i}]", v, Variation)
        for i, v in enumerate(_seq(check, "variations", exp.variations))
    )
    if len(variations) < 2:
        raise check.fail("variations", f"needs at least 2 variations, got {len(variations)}")
    seen: dict[str, int] = {}
    for i, v in enumerate(variations):
        if v.key in seen:
            raise check.fail(
                f"variations[{i}].key",
                f"duplicate variation key {v.key!r} (also variations[{seen[v.key]}])",
            )
        seen[v.key] = i
    force_setattr(exp, "variations", variations)
    n = len(variations)
    weights = equal_weights(n) if exp.weights is None else check.weights(exp.weights, n)
    force_setattr(exp, "weights", tuple(weights))
    force_setattr(exp, "coverage", check.unit_interval("coverage", exp.coverage))
    check.text("hash_attribute", exp.hash_attribute)
    check.text("fallback_attribute", exp.fallback_attribute, optional=True)
    if exp.fallback_attribute == exp.hash_attribute:
        raise check.fail("fallback_attribute", "must differ from hash_attribute")
    if exp.seed is not None:
        check.text("seed", exp.seed)
    force_setattr(exp, "seed", exp.seed or exp.key)
    check.hash_version("hash_version", exp.hash_version)
    force_setattr(exp, "namespace", _namespace(check, exp.namespace))
    force_setattr(exp, "targeting", check.condition("targeting", exp.targeting))
    force_setattr(exp, "audiences", check.names("audiences", exp.audiences))
    if exp.status not in STATUSES:
        raise check.fail("status", f"must be one of {list(STATUSES)} (got {exp.status!r})")
    start = check.moment("phase_start", exp.phase_start)
    end = check.moment("phase_end", exp.phase_end)
    if start is not None and end is not None and not start < end:
        raise check.fail("phase_end", f"must be after phase_start ({start} >= {end})")
    force_setattr(exp, "phase_start", start)
    force_setattr(exp, "phase_end", end)
    if exp.holdout is not None and check.key("holdout", exp.holdout) == exp.key:
        raise check.fail("holdout", "an experiment cannot be its own holdout")


def _namespace(check: Checker, value: Any) -> Namespace | None:
    if value is None:
        return None
    if not isinstance(value, Namespace):
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 3:
            raise check.fail("namespace", f"must be [namespace_id, start, end], got {value!r}")
        value = Namespace(*value)
    check.text("namespace[0]", value.id)
    start = check.unit_interval("namespace[1]", value.start)
    end = check.unit_interval("namespace[2]", value.end)
    if not start < end:
        raise check.fail("namespace", f"start must be below end (got [{start}, {end}])")
    return Namespace(value.id, start, end)


def _seq(check: Checker, field: str, value: Any) -> Sequence[Any]:
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise check.fail(field, f"must be a list, got {value!r}")
    return value


T = TypeVar("T")


def _coerce(check: Checker, field: str, value: Any, type_: type[T]) -> T:
    """Accept a ready Struct, or build one from a mapping (so hand-written dicts work)."""
    if isinstance(value, Mapping):
        return convert(value, type_, check.where, field)
    if isinstance(value, type_):
        return value
    raise check.fail(field, f"must be an object, got {value!r}")


def _where(kind: str, data: Any) -> str:
    key = data.get("key") if isinstance(data, Mapping) else None
    return f"{kind} {key!r}" if key is not None else kind


def parse_experiment(data: Mapping[str, Any]) -> Experiment:
    """Build an :class:`Experiment` from its JSON form (e.g. ``json.load``-ed)."""
    return convert(data, Experiment, _where("experiment", data))


def parse_flag(data: Mapping[str, Any]) -> FeatureFlag:
    """Build a :class:`FeatureFlag` from its JSON form; rules carry ``"type"``: ``"force"`` or
    ``"experiment"``."""
    return convert(data, FeatureFlag, _where("flag", data))


__all__ = [
    "HOLDOUT_ARM",
    "STATUSES",
    "Experiment",
    "ExperimentDefinitionError",
    "ExperimentRule",
    "FeatureFlag",
    "ForceRule",
    "Namespace",
    "Rule",
    "Status",
    "Variation",
    "parse_experiment",
    "parse_flag",
]
