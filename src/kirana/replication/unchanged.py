"""Values an update did not resend (PostgreSQL's unchanged TOAST), resolved in commit order.

PostgreSQL stores large values out of line (TOAST). An update that leaves such a
value alone does not put it in the WAL again, so ``pgoutput`` marks it
*unchanged* instead of sending it. Its value is the last one the row had, in
commit order, which is either

* an earlier change of the same row in the same batch (a batch is later
  collapsed to the newest change per key, so this must be resolved first,
  walking the changes in commit order), or
* the row as the lake holds it before the batch (everything older), or
* when the key itself changed in that update, the same, for the *old* key.

When neither exists (a row first seen through an update that did not carry the
value, e.g. the lake was built from a table that was truncated in the lake only),
the value is genuinely unavailable: text and binary columns get
:data:`UNAVAILABLE` (Debezium's practice of an explicit placeholder), other types
a null, and the counts are returned so the replicator records a warning that
``kirana sources status`` shows. Never a silent null.

No I/O here: the lake's rows come from the ``fetch`` function the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from kirana.replication.changes import MOVED, OP, UNCHANGED_COLUMNS, UPSERT, TableSpec

UNAVAILABLE = "__kirana_unavailable_value"
"""What a text column holds when its value was never sent and no earlier copy exists."""

Key = tuple
Fetch = Callable[[Iterable[Key], list[str]], dict[Key, dict[str, Any]]]
"""``fetch(keys, columns)``: the lake's current row (those columns) for each key it has."""


def placeholder(column_type: pa.DataType) -> Any:
    """The explicit marker a column of this type gets for an unavailable value."""
    if pa.types.is_string(column_type) or pa.types.is_large_string(column_type):
        return UNAVAILABLE
    if pa.types.is_binary(column_type) or pa.types.is_large_binary(column_type):
        return UNAVAILABLE.encode()
    return None


def is_placeholder(value: Any) -> bool:
    return value == UNAVAILABLE or value == UNAVAILABLE.encode()


def resolve_unchanged(
    changes: pa.Table,
    spec: TableSpec,
    fetch: Fetch,
    lake_types: dict[str, pa.DataType] | None = None,
) -> tuple[pa.Table, dict[str, int]]:
    """Fill every unchanged value; return the changes without the marker columns, and
    how many values per column were unavailable (and got :func:`placeholder`).

    ``changes`` must be in commit order (as a source buffers them). A change with
    ``_kirana_moved`` true is the new row of a key change; the change right before
    it is the delete of its old key, whose values it inherits.
    """
    names = changes.column_names
    if UNCHANGED_COLUMNS not in names:
        return changes.drop_columns([c for c in (MOVED,) if c in names]), {}
    rows = changes.num_rows
    marks = [m.split(",") if m else [] for m in changes.column(UNCHANGED_COLUMNS).to_pylist()]
    moved = changes.column(MOVED).to_pylist() if MOVED in names else [None] * rows
    ops = changes.column(OP).to_pylist()
    keys = list(zip(*(changes.column(k).to_pylist() for k in spec.key), strict=True))
    marked = sorted({c for m in marks for c in m})
    changes = changes.drop_columns([c for c in (UNCHANGED_COLUMNS, MOVED) if c in names])
    if not marked:
        return changes, {}

    def origin(i: int) -> Key:
        return keys[i - 1] if moved[i] and i > 0 else keys[i]

    seen: set[Key] = set()
    from_lake: set[Key] = set()
    for i in range(rows):
        if marks[i] and origin(i) not in seen:
            from_lake.add(origin(i))
        if ops[i] == UPSERT:
            seen.add(keys[i])
    lake = fetch(sorted(from_lake, key=repr), marked) if from_lake else {}

    types = dict(lake_types or {})
    values: dict[str, list] = {}
    for column in marked:
        if column in changes.column_names:
            types[column] = changes.column(column).type
            values[column] = changes.column(column).to_pylist()
        else:
            types.setdefault(column, pa.string())
            values[column] = [None] * rows
    known: dict[Key, dict[str, Any]] = {}
    unavailable: dict[str, int] = {}
    for i in range(rows):
        if ops[i] != UPSERT:
            continue
        if marks[i]:
            before = known.get(origin(i), lake.get(origin(i), {}))
            for column in marks[i]:
                value = before.get(column, placeholder(types[column]))
                if column not in before or is_placeholder(value):
                    unavailable[column] = unavailable.get(column, 0) + 1
                values[column][i] = value
        known[keys[i]] = {column: values[column][i] for column in marked}
    for column in marked:
        array = pa.array(values[column], types[column])
        if column in changes.column_names:
            index = changes.column_names.index(column)
            changes = changes.set_column(index, changes.field(column), array)
        else:
            changes = changes.append_column(pa.field(column, types[column]), array)
    return changes, unavailable
