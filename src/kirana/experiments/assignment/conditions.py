"""Targeting conditions in GrowthBook's MongoDB-like syntax: validation and evaluation.

Experiments and force rules carry the same condition dict to Kirana and, verbatim, to SDKs in
the features payload, so evaluation follows the SDKs' semantics (which follow JavaScript):
values of different JSON types never match (``1`` is not ``true``, ``"1"`` is not ``1``),
``$eq``/``$ne`` never match arrays or objects, ordering operators only compare two numbers or
two strings, and a missing attribute reads as ``null``.

Kirana supports a subset and refuses anything else when a definition is built, so an
operator can never be silently ignored by one side and honoured by the other:

* attribute operators: ``$eq $ne $in $nin $gt $gte $lt $lte $exists $not $all $size``, and a
  plain value for equality (arrays and objects compare deeply, keys in order);
* logical keys: ``$and $or $nor`` (lists of conditions) and ``$not`` (a condition);
* dotted paths (``"address.country"``) read nested objects and array indices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_LOGICAL_LISTS = ("$and", "$or", "$nor")
_ORDERING = ("$gt", "$gte", "$lt", "$lte")
_LIST_OPERANDS = ("$in", "$nin", "$all")
OPERATORS = ("$eq", "$ne", *_ORDERING, "$in", "$nin", "$exists", "$not", "$all", "$size")


def condition_problem(condition: Any) -> str | None:
    """Why ``condition`` is not a supported condition, or ``None`` when it is."""
    if not isinstance(condition, Mapping):
        return f"must be an object of attribute conditions, got {type(condition).__name__}"
    for key, value in condition.items():
        if not isinstance(key, str) or not key:
            return f"keys must be non-empty strings, got {key!r}"
        if key in _LOGICAL_LISTS:
            if not isinstance(value, list | tuple):
                return f"{key} takes a list of conditions"
            for item in value:
                if (problem := condition_problem(item)) is not None:
                    return f"{key}: {problem}"
        elif key == "$not":
            if (problem := condition_problem(value)) is not None:
                return f"$not: {problem}"
        elif key.startswith("$"):
            return f"unsupported logical operator {key!r}"
        elif (problem := _value_problem(value)) is not None:
            return f"{key}: {problem}"
    return None


def _is_operator_object(value: Any) -> bool:
    return isinstance(value, Mapping) and all(str(k).startswith("$") for k in value)


def _value_problem(value: Any) -> str | None:
    if not _is_operator_object(value):
        if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
            return "mixes operators and plain keys"
        return json_problem(value)
    for op, operand in value.items():
        if op not in OPERATORS:
            return f"unsupported operator {op!r} (supported: {', '.join(OPERATORS)})"
        if op in _LIST_OPERANDS and not isinstance(operand, list | tuple):
            return f"{op} takes a list"
        if op in ("$in", "$nin") and any(isinstance(v, Mapping | list | tuple) for v in operand):
            return f"{op} takes a list of plain values"
        if op in _ORDERING and not (_is_number(operand) or isinstance(operand, str)):
            return f"{op} takes a number or a string"
        if op in ("$eq", "$ne") and isinstance(operand, Mapping | list | tuple):
            return f"{op} takes a plain value (arrays and objects never match with {op})"
        if op == "$exists" and not isinstance(operand, bool):
            return "$exists takes true or false"
        if op == "$size" and not (_is_number(operand) or _is_operator_object(operand)):
            return "$size takes a number or an operator object"
        if op in ("$not", "$size", "$all"):
            items = operand if op == "$all" else [operand]
            for item in items:
                if (problem := _value_problem(item)) is not None:
                    return f"{op}: {problem}"
    return None


def json_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool | str):
        return None
    if _is_number(value):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, list | tuple):
        return next((p for v in value if (p := json_problem(v)) is not None), None)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "object keys must be strings"
        return next((p for v in value.values() if (p := json_problem(v)) is not None), None)
    return f"{type(value).__name__} is not a JSON value"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "unknown"


def get_path(attributes: Mapping[str, Any], path: str) -> Any:
    """Read a dotted path; arrays expose their indices and ``length``; missing reads ``None``."""
    current: Any = attributes
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and part == "length":
            current = len(current)
        elif isinstance(current, list | tuple) and _is_index(part):
            if int(part) >= len(current):
                return None
            current = current[int(part)]
        else:
            return None
    return current


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdigit() and len(part) <= 10 and str(int(part)) == part


def _strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``===`` on JSON values: containers are never equal, types must match."""
    kind = _json_type(a)
    if kind != _json_type(b) or kind in ("array", "object", "unknown"):
        return False
    return bool(a == b)


def _deep_equal(a: Any, b: Any) -> bool:
    """Literal equality as JSON text would compare: same types, same keys in the same order."""
    kind = _json_type(a)
    if kind != _json_type(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "object":
        return list(a) == list(b) and all(_deep_equal(a[k], b[k]) for k in a)
    if kind == "number" and (math.isnan(a) or math.isnan(b)):
        return False
    return bool(a == b)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _ordered(op: str, actual: Any, expected: Any) -> bool:
    if _is_number(actual) and _is_number(expected):
        if math.isnan(actual) or math.isnan(expected):
            return False
        a, b = actual, expected
    elif isinstance(actual, str) and isinstance(expected, str):
        a, b = _utf16(actual), _utf16(expected)  # JavaScript orders strings by UTF-16 units
    else:
        return False
    if op == "$gt":
        return a > b
    if op == "$gte":
        return a >= b
    if op == "$lt":
        return a < b
    return a <= b


def _is_in(candidates: Any, actual: Any) -> bool:
    """``$in``: a scalar must equal a candidate; an array must share one element with them."""
    if isinstance(actual, list | tuple):
        return any(_strict_equal(v, c) for v in actual for c in candidates)
    return any(_strict_equal(actual, c) for c in candidates)


def _eval_operator(op: str, actual: Any, operand: Any) -> bool:
    if op == "$eq":
        return _strict_equal(actual, operand)
    if op == "$ne":
        return not _strict_equal(actual, operand)
    if op in _ORDERING:
        return _ordered(op, actual, operand)
    if op == "$in":
        return _is_in(operand, actual)
    if op == "$nin":
        return not _is_in(operand, actual)
    if op == "$exists":
        return (actual is not None) if operand else (actual is None)
    if op == "$not":
        return not eval_value(operand, actual)
    if op == "$size":
        return isinstance(actual, list | tuple) and eval_value(operand, len(actual))
    if op == "$all":
        if not isinstance(actual, list | tuple):
            return False
        return all(any(eval_value(want, item) for item in actual) for want in operand)
    raise ValueError(f"unsupported operator {op!r}")


def eval_value(condition_value: Any, actual: Any) -> bool:
    """Match one attribute value against an operator object or a literal."""
    if _is_operator_object(condition_value):
        return all(_eval_operator(op, actual, v) for op, v in condition_value.items())
    return _deep_equal(condition_value, actual)


def eval_condition(attributes: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Whether ``attributes`` satisfy ``condition`` (every key must hold; ``{}`` always does)."""
    for key, value in condition.items():
        if key == "$or":
            ok = not value or any(eval_condition(attributes, c) for c in value)
        elif key == "$nor":
            ok = not (not value or any(eval_condition(attributes, c) for c in value))
        elif key == "$and":
            ok = all(eval_condition(attributes, c) for c in value)
        elif key == "$not":
            ok = not eval_condition(attributes, value)
        else:
            ok = eval_value(value, get_path(attributes, key))
        if not ok:
            return False
    return True


def audiences_condition(audiences: tuple[str, ...]) -> dict[str, Any] | None:
    """The condition for "member of any of these Kirana audiences", or ``None`` for none.

    Kirana fills the ``audiences`` attribute with the names of the audiences a profile is in;
    ``$in`` on an array attribute matches when the two lists share a name.
    """
    if not audiences:
        return None
    return {"audiences": {"$in": list(audiences)}}


def combine(*conditions: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """AND together the non-empty conditions, keeping a single one as it is."""
    present = [dict(c) for c in conditions if c]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return {"$and": present}
