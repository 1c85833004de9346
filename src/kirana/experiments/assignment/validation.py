"""The error type and field checks shared by every definition.

Definitions are written by people (in JSON, YAML or the API), so a refusal must say which
definition, which field and which rule failed, e.g.
``experiment 'checkout': weights: must sum to 1 within 1e-06 (got 0.9)``; callers that need
to react programmatically read ``error.where``, ``error.field`` and ``error.rule``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from kirana.experiments.assignment.conditions import condition_problem, json_problem
from kirana.experiments.assignment.hashing import HASH_VERSIONS


class ExperimentDefinitionError(ValueError):
    """An experiment, feature flag or registry definition broke a rule."""

    def __init__(self, where: str, field: str, rule: str) -> None:
        self.where = where
        self.field = field
        self.rule = rule
        super().__init__(f"{where}: {field}: {rule}")


class Checker:
    """Raises :class:`ExperimentDefinitionError` for one definition (``where``)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, rule: str) -> ExperimentDefinitionError:
        return ExperimentDefinitionError(self.where, field, rule)

    def key(self, field: str, value: Any) -> str:
        """A non-empty identifier without whitespace, not starting with ``$`` (reserved)."""
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        if any(c.isspace() for c in value) or value.startswith("$"):
            raise self.fail(field, f"must not contain whitespace or start with '$', got {value!r}")
        return value

    def text(self, field: str, value: Any, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        return value

    def unit_interval(self, field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"must be a number, got {value!r}")
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise self.fail(field, f"must be within [0, 1] (got {value!r})")
        return float(value)

    def hash_version(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or value not in HASH_VERSIONS:
            raise self.fail(field, f"must be one of {list(HASH_VERSIONS)} (got {value!r})")
        return int(value)

    def json(self, field: str, value: Any) -> Any:
        if (problem := json_problem(value)) is not None:
            raise self.fail(field, f"must be a JSON value: {problem}")
        return value

    def condition(self, field: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if (problem := condition_problem(value)) is not None:
            raise self.fail(field, problem)
        return dict(value)

    def names(self, field: str, value: Any) -> tuple[str, ...]:
        """A list of unique non-empty strings (audience names)."""
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self.fail(field, f"must be a list of names, got {value!r}")
        seen: set[str] = set()
        for i, name in enumerate(value):
            self.text(f"{field}[{i}]", name)
            if name in seen:
                raise self.fail(field, f"duplicate name {name!r}")
            seen.add(name)
        return tuple(value)

    def weights(self, value: Any, num_variations: int) -> tuple[float, ...]:
        if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
            raise self.fail("weights", f"must be a list of numbers, got {value!r}")
        if len(value) != num_variations:
            raise self.fail(
                "weights",
                f"needs one weight per variation ({num_variations} variations, "
                f"got {len(value)} weights)",
            )
        for i, w in enumerate(value):
            self.unit_interval(f"weights[{i}]", w)
        total = math.fsum(value)
        if abs(total - 1) > 1e-6:
            raise self.fail("weights", f"must sum to 1 within 1e-06 (got {total!r})")
        return tuple(float(w) for w in value)

    def moment(self, field: str, value: Any) -> datetime | None:
        """An optional timezone-aware datetime (ISO 8601 text is accepted)."""
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(field, f"must be an ISO 8601 datetime, got {value!r}") from None
        if not isinstance(value, datetime):
            raise self.fail(field, f"must be a datetime, got {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.fail(field, "must include a timezone (e.g. '2025-01-01T00:00:00Z')")
        return value


_AT_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.S)


def convert(data: Any, type_: Any, where: str, prefix: str = "") -> Any:
    """``msgspec.convert`` with its errors turned into :class:`ExperimentDefinitionError`."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as e:
        cause = e.__cause__ if isinstance(e.__cause__, ExperimentDefinitionError) else None
        match = _AT_PATH.match(str(e))
        path = match.group("path") if match else ""
        parts = [p for p in (prefix, path or "", cause.field if cause else "") if p]
        field = ".".join(parts).replace(".[", "[") or "(root)"
        rule = cause.rule if cause else (match.group("msg") if match else str(e))
        raise ExperimentDefinitionError(where, field, rule) from None
