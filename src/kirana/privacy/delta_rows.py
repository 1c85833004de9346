"""Delete a person's rows from a Delta table, file by file, naming nobody in the commit.

Why not ``DeltaTable.delete``: its predicate is written into the commit log (naming the
person), and delta-rs 1.6 writes the files it rewrites with Arrow *view* types
(``string_view``), which the lake's readers (pyarrow datasets under DuckDB) then cannot
filter next to the table's other files ("no kernel matching input types (string,
string_view)"). So: find the files that hold a matching row (reading only the matched
columns), rewrite each without those rows with pyarrow in the table's plain types, and
commit the swap (remove old, add new) as one transaction. The new files carry only a row
count as statistics — min/max values could name people, and readers only lose file skipping
on them. A concurrent writer makes the commit fail; the attempt's files are removed and the
whole step is redone on the new version.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from kirana.privacy.participants import note_rewrite

_PLAIN = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


#: a row (its columns by name) -> is it to be deleted?
RowFilter = Callable[[dict[str, Any]], bool]


def delete_rows_where_in(
    path: Path, match: dict[str, list[str]], attempts: int = 10, owned: RowFilter | None = None
) -> int:
    """Delete rows where any ``column`` is in its ``values`` (and, when ``owned`` is given,
    that it accepts: the rows of someone else that merely quote a value stay); returns how
    many went."""
    match = {c: v for c, v in match.items() if v}
    if not match or not (path / "_delta_log").is_dir():
        return 0
    for attempt in range(attempts):
        table = DeltaTable(path)
        written: list[Path] = []
        try:
            actions, deleted = _plan(table, path, match, written, owned)
            if not actions:
                return 0
            note_rewrite("rewrite", path)
            table.create_write_transaction(
                actions,
                mode="append",
                schema=table.schema(),
                partition_by=table.metadata().partition_columns or None,
                commit_properties=CommitProperties(custom_metadata={"kirana.operation": "erase"}),
            )
            return deleted
        except CommitFailedError:
            for file in written:
                file.unlink(missing_ok=True)
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
        except BaseException:
            for file in written:
                file.unlink(missing_ok=True)
            raise
    return 0


def _mask(data: pa.Table, match: dict[str, list[str]]) -> pa.ChunkedArray | None:
    mask = None
    for column, values in match.items():
        if column not in data.column_names:
            continue
        hit = pc.is_in(
            data.column(column).cast(pa.string()), value_set=pa.array(values, pa.string())
        )
        mask = hit if mask is None else pc.or_(mask, hit)
    return mask


def _refine(data: pa.Table, mask: pa.ChunkedArray, owned: RowFilter) -> pa.Array:
    """``mask`` where ``owned`` also accepts the row (only the matched rows are built)."""
    flags = mask.to_pylist()
    hits = [i for i, hit in enumerate(flags) if hit]
    rows = data.take(pa.array(hits, pa.int64())).to_pylist()
    refined = [False] * len(flags)
    for i, row in zip(hits, rows, strict=True):
        refined[i] = owned(row)
    return pa.array(refined, pa.bool_())


def _plain(data: pa.Table) -> pa.Table:
    schema = pa.schema([f.with_type(_PLAIN.get(f.type, f.type)) for f in data.schema])
    return data.cast(schema) if schema != data.schema else data


def _plan(
    table: DeltaTable,
    root: Path,
    match: dict[str, list[str]],
    written: list[Path],
    owned: RowFilter | None,
) -> tuple[list[AddAction | RemoveAction], int]:
    files = pa.table(table.get_add_actions(flatten=True))
    partitions = [n for n in files.column_names if n.startswith("partition.")]
    now = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = []
    deleted = 0
    for row in files.to_pylist():
        rel = row["path"]
        file = root / unquote(rel)
        present = [c for c in match if c in pq.read_schema(file).names]
        if not present:
            continue
        mask = _mask(pq.ParquetFile(file).read(columns=present), match)
        hits = 0 if mask is None else pc.sum(mask).as_py() or 0
        if not hits:
            continue
        data = _plain(pq.ParquetFile(file).read())
        if owned is not None:
            mask = _refine(data, mask, owned)
            hits = pc.sum(mask).as_py() or 0
            if not hits:
                continue
        values = {
            p.removeprefix("partition."): None if row[p] is None else str(row[p])
            for p in partitions
        }
        kept = data.filter(pc.invert(mask))
        actions.append(RemoveAction(rel, True, now, row["size_bytes"], values))
        deleted += hits
        if kept.num_rows:
            new_rel = posixpath.join(posixpath.dirname(rel), f"part-erased-{uuid.uuid4()}.parquet")
            target = root / unquote(new_rel)
            written.append(target)
            pq.write_table(kept, target)
            stats = msgspec.json.encode({"numRecords": kept.num_rows}).decode()
            actions.append(AddAction(new_rel, target.stat().st_size, values, now, True, stats))
    return actions, deleted
