"""PostgreSQL column types as Arrow types, and text values as Arrow arrays. No I/O.

Snapshot rows (``COPY … (FORMAT csv)``) and ``pgoutput`` tuples are both text,
so one vectorised conversion serves both; both come from the type's own output
function (the snapshot copies columns as they are, never ``::text``, which would
strip ``char(n)`` padding), so a value reads the same whenever it was copied. The
replicating sessions set ``DateStyle=ISO``, ``TimeZone=UTC``, ``bytea_output=hex``
and ``extra_float_digits=3`` so the text is predictable and exact. Types without a
faithful Delta twin (arrays, ranges, intervals, json, unconstrained numeric,
money, time, timetz, uuid, inet, bit strings, enums) stay text, exactly as PostgreSQL
prints them: nothing is rounded or guessed. A value the lake type cannot hold
(``NaN`` in a ``numeric(p,s)``, a date or timestamp at ``±infinity`` or BC) is a
ValueError naming the column and the value, never a null.
The full table is in docs/replication.md, "Types".
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

BOOL, BYTEA, INT8, INT2, INT4, OID = 16, 17, 20, 21, 23, 26
FLOAT4, FLOAT8, DATE, TIMESTAMP, TIMESTAMPTZ, NUMERIC = 700, 701, 1082, 1114, 1184, 1700

SESSION_OPTIONS = (
    "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex"
    " -c IntervalStyle=postgres"
)


def arrow_type(type_oid: int, type_modifier: int = -1) -> pa.DataType:
    """The Arrow type for a PostgreSQL type (text for anything without a faithful twin)."""
    simple = {
        BOOL: pa.bool_(),
        BYTEA: pa.binary(),
        INT2: pa.int16(),
        INT4: pa.int32(),
        INT8: pa.int64(),
        OID: pa.int64(),
        FLOAT4: pa.float32(),
        FLOAT8: pa.float64(),
        DATE: pa.date32(),
        TIMESTAMP: pa.timestamp("us"),
        TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    }
    if type_oid in simple:
        return simple[type_oid]
    if type_oid == NUMERIC and type_modifier >= 4:
        precision, scale = ((type_modifier - 4) >> 16) & 0xFFFF, (type_modifier - 4) & 0xFFFF
        if 0 < precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
    return pa.string()


def from_text(
    values: pa.Array | Sequence[str | None], target: pa.DataType, column: str = ""
) -> pa.Array:
    """Convert PostgreSQL text values to ``target``; ValueError names the column and value."""
    text = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    if text.type != pa.string():
        text = text.cast(pa.string())
    try:
        return _convert(text, target)
    except (pa.ArrowInvalid, ValueError) as exc:
        bad = _first_bad(text, target)
        raise ValueError(
            f"column {column!r}: the PostgreSQL value {bad!r} cannot be represented as"
            f" {target} in the lake ({exc})"
        ) from exc


def _convert(text: pa.Array, target: pa.DataType) -> pa.Array:
    if target == pa.string():
        return text
    if target == pa.bool_():
        return pc.if_else(pc.is_null(text), None, pc.equal(text, "t"))
    if target == pa.binary():
        return pa.array(
            [None if v is None else bytes.fromhex(v[2:]) for v in text.to_pylist()],
            pa.binary(),
        )
    if pa.types.is_timestamp(target) and target.tz is not None:
        text = pc.replace_substring_regex(text, r"([+-]\d\d)$", r"\1:00")
    return text.cast(target)


def _first_bad(text: pa.Array, target: pa.DataType) -> str | None:
    for value in text.to_pylist():
        try:
            _convert(pa.array([value], pa.string()), target)
        except (pa.ArrowInvalid, ValueError):
            return value
    return None
