"""Validation rules shared by computed traits and audiences.

Every check raises :class:`DefinitionError` with the path of the offending
part (``conditions.and[1].at_least``) and the rule it breaks, because a person
editing a definition needs to know *where* it is wrong, not just that it is.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from kirana.segments.paths import PropertyPath, parse_path

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
NAME_RULE = "must match ^[a-z][a-z0-9_]{0,62}$ (lowercase letter, then letters, digits, _)"
OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists")
NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
MAX_DAYS = 36_500
MAX_COUNT = 1_000_000_000

Scalar = str | int | float | bool


class DefinitionError(ValueError):
    """A definition breaks a rule; ``path`` names the part, ``rule`` says what is wrong."""

    def __init__(self, path: str, rule: str, subject: str = "") -> None:
        self.path, self.rule, self.subject = path, rule, subject
        where = f"{path}: " if path else ""
        super().__init__(f"{subject}: {where}{rule}" if subject else f"{where}{rule}")

    def about(self, subject: str) -> DefinitionError:
        """The same error, prefixed with what it is about (``audience "loyal"``)."""
        return DefinitionError(self.path, self.rule, subject)


class Filter(msgspec.Struct, frozen=True):
    """``{property, op, value}``: a test on an event's properties (or an array element)."""

    property: PropertyPath
    op: str
    value: Any


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_keys(obj: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DefinitionError(path, "must be an object")
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        raise DefinitionError(path, f'unknown key "{unknown[0]}" (allowed: {", ".join(allowed)})')
    return obj


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(value: Any, path: str, limit: int = MAX_DAYS) -> int:
    if not is_int(value) or not 1 <= value <= limit:
        raise DefinitionError(path, f"must be an integer >= 1 (at most {limit})")
    return value


def name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise DefinitionError(path, NAME_RULE)
    return value


def event_name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200 or "\0" in value:
        raise DefinitionError(path, "must be an event name (1 to 200 characters)")
    return value


def scalar(value: Any, path: str) -> Scalar:
    """A comparison value: a string, a finite number or a boolean (null: use exists)."""
    if isinstance(value, str):
        if "\0" in value:
            raise DefinitionError(path, "must not contain a NUL character")
        return value
    if is_number(value):
        try:
            ok = math.isfinite(float(value))
        except OverflowError:
            ok = False
        if not ok:
            raise DefinitionError(path, "must be a finite number")
        return value
    if isinstance(value, bool):
        return value
    raise DefinitionError(path, "must be a string, a number or a boolean (for null use exists)")


def op_value(obj: dict[str, Any], path: str) -> tuple[str, Any]:
    """Check ``op`` and ``value`` of a trait condition or filter; return them normalised."""
    op = obj.get("op")
    if op not in OPS:
        raise DefinitionError(join(path, "op"), f"{show(op)} is not one of {', '.join(OPS)}")
    vpath = join(path, "value")
    if op == "exists":
        value = obj.get("value", True)
        if not isinstance(value, bool):
            raise DefinitionError(vpath, "must be true or false for exists")
        return op, value
    if "value" not in obj:
        raise DefinitionError(vpath, f"is required for {op}")
    value = obj["value"]
    if op == "in":
        if not isinstance(value, list) or not value:
            raise DefinitionError(vpath, "must be a non-empty list for in")
        return op, tuple(scalar(v, join(vpath, i)) for i, v in enumerate(value))
    if op in NUMERIC_OPS and not is_number(value):
        raise DefinitionError(vpath, f"must be a number for {op}")
    return op, scalar(value, vpath)


def filters(raw: Any, path: str, unnested: PropertyPath | None = None) -> tuple[Filter, ...]:
    """Parse a ``where`` list. ``[]`` filters must all unnest one array (``unnested``'s if set)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DefinitionError(path, "must be a list of {property, op, value} filters")
    out: list[Filter] = []
    prefix = unnested.array_prefix if unnested else None
    for i, item in enumerate(raw):
        fpath = join(path, i)
        obj = check_keys(item, fpath, ("property", "op", "value"))
        try:
            prop = parse_path(obj.get("property"))
        except ValueError as exc:
            raise DefinitionError(join(fpath, "property"), str(exc)) from None
        if prop.array_prefix is not None:
            if prefix is None:
                prefix = prop.array_prefix
            elif prop.array_prefix != prefix:
                raise DefinitionError(
                    join(fpath, "property"),
                    f"every [] filter must unnest the same array ({prefix})",
                )
        op, value = op_value(obj, fpath)
        out.append(Filter(prop, op, value))
    return tuple(out)


def show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)
