"""PostgreSQL DDL and values for Arrow tables (no I/O).

The warehouse is PostgreSQL (the role Redshift plays in the post: same wire
protocol). Nested Arrow values (lists, structs, maps) become ``jsonb``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_type(arrow: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type."""
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_int8(arrow) or pa.types.is_int16(arrow) or pa.types.is_uint8(arrow):
        return "smallint"
    if pa.types.is_int32(arrow) or pa.types.is_uint16(arrow):
        return "integer"
    if pa.types.is_int64(arrow) or pa.types.is_uint32(arrow):
        return "bigint"
    if pa.types.is_uint64(arrow):
        return "numeric(20,0)"
    if pa.types.is_float16(arrow) or pa.types.is_float32(arrow):
        return "real"
    if pa.types.is_float64(arrow):
        return "double precision"
    if pa.types.is_decimal(arrow):
        return f"numeric({arrow.precision},{arrow.scale})"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_timestamp(arrow):
        return "timestamptz" if arrow.tz else "timestamp"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "bytea"
    if pa.types.is_nested(arrow):
        return "jsonb"
    return "text"


def create_table(schema: str, table: str, columns: pa.Schema, key: list[str]) -> str:
    body = [f"{ident(f.name)} {pg_type(f.type)}" for f in columns]
    if key:
        body.append(f"PRIMARY KEY ({', '.join(ident(k) for k in key)})")
    return f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{ident(table)} ({', '.join(body)})"


def add_columns(schema: str, table: str, columns: list[pa.Field]) -> list[str]:
    return [
        f"ALTER TABLE {ident(schema)}.{ident(table)} ADD COLUMN IF NOT EXISTS"
        f" {ident(f.name)} {pg_type(f.type)}"
        for f in columns
    ]


def upsert(schema: str, table: str, stage: str, columns: list[str], key: list[str]) -> str:
    names = ", ".join(ident(c) for c in columns)
    target = f"{ident(schema)}.{ident(table)}"
    if not key:
        return f"INSERT INTO {target} ({names}) SELECT {names} FROM {ident(stage)}"
    updates = [c for c in columns if c not in key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in updates)
        if updates
        else "DO NOTHING"
    )
    return (
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {ident(stage)}"
        f" ON CONFLICT ({', '.join(ident(k) for k in key)}) {action}"
    )


def delete_keys(schema: str, table: str, stage: str, key: list[str]) -> str:
    match = " AND ".join(f"t.{ident(k)} = s.{ident(k)}" for k in key)
    return f"DELETE FROM {ident(schema)}.{ident(table)} t USING {ident(stage)} s WHERE {match}"


def to_pg(value: Any) -> Any:
    """A Python value from Arrow in the form psycopg's COPY takes."""
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
