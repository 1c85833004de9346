"""What every replication backend produces, and how a batch of changes collapses (no I/O).

A change is a row of its table plus two bookkeeping columns:

* ``_kirana_op``: ``u`` (insert or update: an upsert by key) or ``d`` (delete);
* ``_kirana_seq``: the source position of the change: the commit LSN for
  PostgreSQL, the binlog file and offset for MySQL, the file's arrival number
  for file drops. Positions only grow, so they order changes and let a table
  skip what it already holds after a restart.

Ordering is *last writer wins* on ``(precombine, _kirana_seq)`` when the table
has a precombine column (Hudi's name for the version field), else on
``_kirana_seq`` alone. A null precombine value is the oldest possible. Because
the rule only compares versions, applying a batch collapsed to the newest change
per key gives the same table as applying its changes one by one, in any order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

OP = "_kirana_op"
SEQ = "_kirana_seq"
UPSERT = "u"
DELETE = "d"
UNCHANGED_COLUMNS = "_kirana_unchanged"
"""Optional: comma-separated columns an update did not resend (PostgreSQL TOAST); keep them."""
MOVED = "_kirana_moved"
"""Optional: true on the new row of a key change (its unchanged values are the old key's)."""
BOOKKEEPING = (OP, SEQ, UNCHANGED_COLUMNS, MOVED)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TableSpec:
    """One replicated table: its name in the lake, its record key and its version column."""

    name: str
    key: tuple[str, ...]
    precombine: str | None = None
    source_table: str = ""
    """The table's name at the source (``schema.table``), when it differs from ``name``."""

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError(f"table {self.name!r}: `key` needs at least one column")
        for column in (*self.key, *([self.precombine] if self.precombine else [])):
            if column in BOOKKEEPING:
                raise ValueError(f"table {self.name!r}: column {column!r} is reserved")


def quote(name: str) -> str:
    """A SQL identifier in double quotes (DuckDB, PostgreSQL and DataFusion agree)."""
    return '"' + name.replace('"', '""') + '"'


def check_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain identifier, else a ValueError naming ``what``."""
    if not _IDENT.match(name):
        raise ValueError(f"{what} {name!r} must be letters, digits and underscores")
    return name


def newest_per_key(changes: pa.Table, spec: TableSpec) -> pa.Table:
    """The newest change per key (by precombine, then position, then arrival order).

    Merging needs one source row per key; this is the row the rules say wins.
    Sorts by key then version and keeps the last row of each key's run.
    """
    rows = changes.num_rows
    if rows <= 1:
        return changes
    numbered = changes.append_column("__arrival", pa.array(range(rows), pa.int64()))
    order = [(k, "ascending", "at_start") for k in spec.key]
    if spec.precombine:
        order.append((spec.precombine, "ascending", "at_start"))  # a null version is the oldest
    order += [(SEQ, "ascending", "at_start"), ("__arrival", "ascending", "at_start")]
    ordered = numbered.take(pc.sort_indices(numbered, sort_keys=order))
    differs = None
    for key in spec.key:
        column = ordered.column(key).combine_chunks()
        step = pc.not_equal(column.slice(0, rows - 1), column.slice(1))
        differs = step if differs is None else pc.or_(differs, step)
    last = pa.concat_arrays([differs, pa.array([True])])
    kept = ordered.filter(last)
    kept = kept.take(
        pc.sort_indices(kept, sort_keys=[(SEQ, "ascending"), ("__arrival", "ascending")])
    )
    return kept.drop_columns(["__arrival"])


def newer_than(spec: TableSpec, new: str = "s", old: str = "t") -> str:
    """A SQL predicate: row ``new`` is strictly newer than row ``old``.

    Strictly: a replayed change (same version) changes nothing, so a replay can
    never show up as an update in the change data feed.
    """
    seq = f"{new}.{quote(SEQ)} > {old}.{quote(SEQ)}"
    if not spec.precombine:
        return seq
    p = quote(spec.precombine)
    same = f"({new}.{p} = {old}.{p} OR ({new}.{p} IS NULL AND {old}.{p} IS NULL))"
    return (
        f"({new}.{p} > {old}.{p} OR ({new}.{p} IS NOT NULL AND {old}.{p} IS NULL) "
        f"OR ({same} AND {seq}))"
    )


@dataclass
class TableBuffer:
    """Changes to one table gathered from a stream, turned into Arrow in one go.

    Columns may appear mid-stream (an ``ALTER TABLE … ADD COLUMN``): earlier rows
    get nulls for them. ``types`` gives each column's Arrow type; a column
    without one is inferred from its values.
    """

    types: dict[str, pa.DataType] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    truncated_at: int | None = None
    """Position of the last TRUNCATE in this batch: the table restarts empty there."""

    def add(self, op: str, row: dict[str, Any], seq: int) -> None:
        self.rows.append({**row, OP: op, SEQ: seq})

    def truncate(self, seq: int) -> None:
        self.rows.clear()
        self.truncated_at = seq

    def __len__(self) -> int:
        return len(self.rows)

    def to_arrow(
        self,
        convert: Callable[[str, list], pa.Array] | None = None,
        absent: dict[str, Any] | None = None,
    ) -> pa.Table:
        """The buffered changes as one table; ``convert(column, values)`` builds each column.

        A row written before a column existed lacks it: it gets ``absent[column]`` (the
        value the source gives such rows, e.g. the column's default), else null.
        """
        names: dict[str, None] = dict.fromkeys(self.types)
        for row in self.rows:
            names.update(dict.fromkeys(row))
        names.pop(OP, None)
        names.pop(SEQ, None)
        absent = absent or {}
        columns = {}
        for name in names:
            if name in absent:
                values = [row[name] if name in row else absent[name] for row in self.rows]
            else:
                values = [row.get(name) for row in self.rows]
            if convert is not None:
                columns[name] = convert(name, values)
            else:
                columns[name] = pa.array(values, type=self.types.get(name))
        columns[OP] = pa.array([row[OP] for row in self.rows], pa.string())
        columns[SEQ] = pa.array([row[SEQ] for row in self.rows], pa.int64())
        return pa.table(columns)


@dataclass
class ChangeSet:
    """Whole transactions read from a source, ready to apply in one Delta commit per table."""

    position: int
    """Source position after the last transaction in the set (what to confirm)."""
    tables: dict[str, pa.Table]
    truncated: dict[str, int] = field(default_factory=dict)
    """Tables truncated in the set, with the position of the truncate."""
    checkpoint: dict[str, Any] = field(default_factory=dict)
    """Backend-specific resume point, saved once every table has committed."""
    source_time: float | None = None
    """Unix time of the newest change at the source (for lag)."""
    transactions: int = 0
    existing_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per table, the value rows that predate an added column have in it (its default),
    for columns that have one: the lake gives it to the rows it holds when adding it."""

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def missing_columns(rows: pa.Table, required: Iterable[str]) -> list[str]:
    have = set(rows.column_names)
    return [c for c in required if c not in have]


def conform(rows: pa.Table, table_schema: pa.Schema) -> pa.Table:
    """Cast ``rows`` to the table's types and add the table's columns it lacks as nulls.

    New columns in ``rows`` stay as they are (the merge adds them to the table).
    Raises ValueError naming the column when a value cannot take the table's type.
    """
    out = rows
    for table_field in table_schema:
        name = table_field.name
        if name not in out.column_names:
            out = out.append_column(
                table_field.with_nullable(True), pa.nulls(out.num_rows, table_field.type)
            )
            continue
        column = out.column(name)
        if column.type != table_field.type:
            try:
                cast = column.cast(table_field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(
                    f"column {name!r}: values of type {column.type} do not fit the lake "
                    f"table's type {table_field.type} ({exc})"
                ) from exc
            out = out.set_column(
                out.column_names.index(name), table_field.with_nullable(True), cast
            )
    return out
