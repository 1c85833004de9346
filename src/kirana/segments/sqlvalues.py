"""SQL text for literals and for the value operators on JSON values.

Every user-supplied string reaches SQL through :func:`literal` (quotes
doubled); names and paths were already restricted by the parser, and are
quoted anyway. The operators follow the value rules of the language (see
``docs/segments.md``), which :mod:`kirana.segments.realtime` implements in
Python:

* a value is *missing* when absent or JSON ``null``; missing satisfies only
  ``exists false``;
* ``eq``/``neq``/``in`` compare JSON-typed: a string equals only a string, a
  boolean only a boolean, a number only a number (compared as DOUBLE, so 1 and
  1.0 are equal and the string "5" is not the number 5);
* ``gt``/``gte``/``lt``/``lte`` hold only for JSON numbers, compared as DOUBLE;
* ``contains``: substring of a string, or an element (``eq``) of an array.

Every predicate is NULL-free (``coalesce(..., false)``), so ``NOT`` is an exact
complement.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from kirana.segments.rules import is_number

NUMBER_TYPES = "('UBIGINT', 'BIGINT', 'DOUBLE', 'HUGEINT')"
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def literal(text: str) -> str:
    """A SQL string literal: the only way user text enters generated SQL."""
    if "\0" in text:
        raise ValueError("NUL in a SQL literal")
    return "'" + text.replace("'", "''") + "'"


def double(value: int | float) -> str:
    """A DOUBLE literal with the exact value Python's ``float(value)`` has."""
    return f"CAST({literal(repr(float(value)))} AS DOUBLE)"


def timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    text = moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")
    return f"CAST({literal(text)} AS TIMESTAMPTZ)"


def as_number(j: str) -> str:
    return f"(CASE WHEN json_type({j}) IN {NUMBER_TYPES} THEN TRY_CAST({j} AS DOUBLE) END)"


def as_string(j: str) -> str:
    return f"(CASE WHEN json_type({j}) = 'VARCHAR' THEN ({j} ->> '$') END)"


def as_boolean(j: str) -> str:
    return f"(CASE WHEN json_type({j}) = 'BOOLEAN' THEN TRY_CAST({j} AS BOOLEAN) END)"


def as_array(j: str) -> str:
    return f"(CASE WHEN json_type({j}) = 'ARRAY' THEN CAST({j} AS JSON[]) END)"


def lambda_name(scope: str) -> str:
    """A lambda parameter name unique to ``scope`` (so nested lambdas never shadow)."""
    return "x_" + hashlib.blake2s(scope.encode(), digest_size=5).hexdigest()


def present(j: str) -> str:
    return f"coalesce(json_type({j}) <> 'NULL', false)"


def predicate(j: str, op: str, value: Any) -> str:
    """SQL boolean (never NULL) for ``op value`` on the JSON expression ``j``."""
    if op == "exists":
        return present(j) if value else f"(NOT {present(j)})"
    if op == "eq":
        return _equals_any(j, (value,))
    if op == "in":
        return _equals_any(j, value)
    if op == "neq":
        return f"({present(j)} AND NOT {_equals_any(j, (value,))})"
    if op in _COMPARE:
        return f"coalesce({as_number(j)} {_COMPARE[op]} {double(value)}, false)"
    if op == "contains":
        e = lambda_name(j)
        has = f"list_filter({as_array(j)}, lambda {e}: {_equals_any(e, (value,))})"
        element = f"coalesce(len({has}) > 0, false)"
        if isinstance(value, str):
            return f"(coalesce(contains({as_string(j)}, {literal(value)}), false) OR {element})"
        return element
    raise ValueError(f"unknown op {op!r}")


def _equals_any(j: str, values: Any) -> str:
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if is_number(v)]
    booleans = [v for v in values if isinstance(v, bool)]
    tests = []
    if strings:
        tests.append(f"{as_string(j)} IN ({', '.join(literal(s) for s in strings)})")
    if numbers:
        tests.append(f"{as_number(j)} IN ({', '.join(double(n) for n in numbers)})")
    if booleans:
        tests.append(f"{as_boolean(j)} IN ({', '.join(str(b).lower() for b in booleans)})")
    return "coalesce(" + " OR ".join(tests) + ", false)"
