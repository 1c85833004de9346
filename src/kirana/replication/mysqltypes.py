"""MySQL / MariaDB column types as lake types, and values as the lake holds them. No I/O.

The snapshot reads values through the client (``pymysql``: MySQL's text protocol)
and the stream through the binlog (``mysql-replication``: the binary row image);
the two libraries hand back different Python values for the same column (a
``SET`` as a string or as an unordered set, ``BIT`` as bytes or as a string of
digits, ``YEAR 0000`` as 0 or 1900, a zero date as a string or as None). Both
go through this module so a value reads the same whenever it was copied.

A value the lake type cannot hold (a zero date ``0000-00-00``, a date with a zero
month or day) is a ValueError naming the column and the value, never a null. The
full table is in docs/replication.md, "Types".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import pyarrow as pa

_MEMBER = re.compile(r"'((?:[^']|'')*)'")
_ZERO_DATE_SOURCES = ("out of date range", "out of datetime range", "out of datetime2 range")


@dataclass(frozen=True)
class MySQLColumn:
    """One column as ``information_schema.columns`` describes it."""

    name: str
    data_type: str
    column_type: str
    precision: int | None = None
    scale: int | None = None
    fsp: int | None = None
    """Fractional seconds digits of TIME / DATETIME / TIMESTAMP."""

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type

    @property
    def members(self) -> tuple[str, ...]:
        """SET members in their declared order (the order MySQL prints them in)."""
        inside = self.column_type[self.column_type.index("(") + 1 : self.column_type.rindex(")")]
        return tuple(m.replace("''", "'") for m in _MEMBER.findall(inside))

    @property
    def width(self) -> int:
        """The ``n`` of ``binary(n)`` / ``char(n)``."""
        found = re.search(r"\((\d+)\)", self.column_type)
        return int(found.group(1)) if found else 1

    @property
    def lake_type(self) -> pa.DataType:
        kind = self.data_type
        if kind in ("tinyint", "smallint", "mediumint", "year"):
            return pa.int32()
        if kind == "int":
            return pa.int64() if self.unsigned else pa.int32()
        if kind == "bigint":
            return pa.decimal128(20, 0) if self.unsigned else pa.int64()
        if kind == "bit":  # bits as an unsigned number; BIT(64) does not fit int64
            return pa.decimal128(20, 0) if (self.precision or 1) > 63 else pa.int64()
        if kind == "float":
            return pa.float32()
        if kind == "double":
            return pa.float64()
        if kind == "decimal" and self.precision and self.precision <= 38:
            return pa.decimal128(self.precision, self.scale or 0)
        if kind == "date":
            return pa.date32()
        if kind == "datetime":
            return pa.timestamp("us")
        if kind == "timestamp":  # an instant: the sessions run in UTC
            return pa.timestamp("us", tz="UTC")
        if kind in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
            return pa.binary()
        if kind in ("geometry", "point", "linestring", "polygon", "multipoint"):
            return pa.binary()
        if kind in ("multilinestring", "multipolygon", "geometrycollection"):
            return pa.binary()
        return pa.string()


def _unfit(column: str, value: Any, why: str) -> ValueError:
    return ValueError(
        f"column {column!r}: the MySQL value {value!r} cannot be represented in the lake ({why})"
    )


def time_text(value: timedelta, fsp: int | None) -> str:
    """A TIME as MySQL prints it: ``-838:59:59``, ``01:02:03.500`` for TIME(3)."""
    micros = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if fsp:
        text += "." + f"{fraction:06d}"[:fsp]
    return text


def lake_value(value: Any, column: MySQLColumn, where: str, *, zero_date: bool = False) -> Any:
    """``value`` (from the client or the binlog) as the lake holds it.

    ``zero_date`` says the binlog reader returned None for a zero date (it cannot
    be told from a NULL by its value). ``where`` names the column in errors.
    """
    kind = column.data_type
    if zero_date:
        raise _unfit(where, "0000-00-00", f"{kind} has no zero date in the lake")
    if value is None:
        return None
    if kind in ("date", "datetime", "timestamp"):
        if isinstance(value, str | bytes):  # the client hands back what it cannot parse
            text = value.decode() if isinstance(value, bytes) else value
            raise _unfit(where, text, f"not a valid {kind}")
        if kind == "timestamp" and isinstance(value, datetime) and value == datetime(1970, 1, 1):
            raise _unfit(where, "0000-00-00 00:00:00", "timestamp has no zero date in the lake")
        if kind == "date" and isinstance(value, datetime):
            return value.date()
        return value
    if kind == "time":
        return time_text(value, column.fsp) if isinstance(value, timedelta) else str(value)
    if kind == "year":
        return 0 if value == 1900 else int(value)  # the binlog reads YEAR 0000 as 1900
    if kind == "bit":
        if isinstance(value, bytes):
            number = int.from_bytes(value, "big")
        else:
            number = int(value, 2) if isinstance(value, str) else int(value)
        return Decimal(number) if pa.types.is_decimal(column.lake_type) else number
    if kind == "set":
        chosen = set(value.split(",")) if isinstance(value, str) and value else set(value or ())
        return ",".join(m for m in column.members if m in chosen)
    target = column.lake_type
    if pa.types.is_decimal(target):
        return Decimal(value)
    if target == pa.string():
        if isinstance(value, Decimal):  # decimal(p>38, s): exactly as MySQL prints it
            exact = Context(prec=100).quantize(value, Decimal(1).scaleb(-(column.scale or 0)))
            return format(exact, "f")
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, dict | list):
            import json

            return json.dumps(value)
        return value if isinstance(value, str) else str(value)
    if target == pa.binary() and isinstance(value, str):
        value = value.encode()
    if kind == "binary" and isinstance(value, bytes):  # the binlog drops the 0x00 padding
        return value.ljust(column.width, b"\x00")
    if isinstance(value, date | datetime):
        return value
    return value


def empty_set(column: MySQLColumn, none_source: str | None) -> bool:
    """The binlog reader returns None for an empty SET; it is the empty string."""
    return column.data_type == "set" and none_source == "empty set"


def zero_date(none_source: str | None) -> bool:
    """The binlog reader returned None because the value was a zero date."""
    return none_source in _ZERO_DATE_SOURCES
