"""A replicated table in the lake: ``lake/replicated/<source>/<table>`` (Delta, CDF on).

Exactly once: every commit carries an application transaction (``txn``, app id
``kirana.replication.<source>``) whose version is the source position of the
newest change in it. The version is written atomically with the data, so after
a crash the table itself says what it holds; changes at or below it are
dropped before merging, whatever the source replays.

Upserts are a Delta MERGE on the record key that updates a row only when the
incoming change is strictly newer (see :func:`~kirana.replication.changes.newer_than`);
new columns are added by the merge (schema evolution). The change data feed
(``delta.enableChangeDataFeed``) lets later jobs read "changes since version N"
(:func:`changes_since`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.schema import Field as DeltaField

from kirana.replication.changes import (
    DELETE,
    OP,
    SEQ,
    TableSpec,
    conform,
    missing_columns,
    newer_than,
    newest_per_key,
    quote,
)
from kirana.replication.unchanged import resolve_unchanged

log = logging.getLogger(__name__)

CONFIGURATION = {"delta.enableChangeDataFeed": "true"}
COMPACT_EVERY_COMMITS = 100


def table_path(lake_dir: Path, source: str, table: str) -> Path:
    return Path(lake_dir) / "replicated" / source / table


def arrow_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def table_key(path: Path) -> list[str]:
    """The record key a replicated table was created with ([] if it has none)."""
    try:
        description = DeltaTable(path).metadata().description or ""
        return list(json.loads(description).get("key", []))
    except (TableNotFoundError, ValueError, AttributeError):
        return []


class ReplicatedTable:
    """One Delta table fed by one replication source."""

    def __init__(self, lake_dir: Path, source: str, spec: TableSpec) -> None:
        self.spec = spec
        self.source = source
        self.path = table_path(lake_dir, source, spec.name)
        self.app_id = f"kirana.replication.{source}"
        self._commits = 0
        self._delta: DeltaTable | None = None

    def _table(self) -> DeltaTable | None:
        """The table at its latest version (one handle, brought up to date incrementally:
        opening a table replays its log, which dominates small merges)."""
        if self._delta is not None:
            self._delta.update_incremental()
            return self._delta
        try:
            self._delta = DeltaTable(self.path)
        except TableNotFoundError:
            return None
        return self._delta

    def applied_position(self) -> int | None:
        """The source position of the newest change the table holds (None: nothing yet)."""
        table = self._table()
        return None if table is None else table.transaction_version(self.app_id)

    def version(self) -> int | None:
        table = self._table()
        return None if table is None else table.version()

    def _create(self, schema: pa.Schema) -> DeltaTable:
        self.path.mkdir(parents=True, exist_ok=True)
        fields = [f.with_nullable(True) for f in schema if f.name != OP]
        description = {"source": self.source, "key": list(self.spec.key)}
        if self.spec.precombine:
            description["precombine"] = self.spec.precombine
        self._delta = DeltaTable.create(
            self.path,
            schema=pa.schema(fields),
            name=f"{self.source}_{self.spec.name}",
            description=json.dumps(description),
            configuration=CONFIGURATION,
        )
        return self._delta

    def _check(self, rows: pa.Table) -> None:
        needed = [*self.spec.key, *([self.spec.precombine] if self.spec.precombine else [])]
        missing = missing_columns(rows, needed)
        if missing:
            raise ValueError(
                f"table {self.spec.name!r}: rows lack the key/precombine column(s) {missing}"
            )
        for key in self.spec.key:
            if rows.column(key).null_count:
                raise ValueError(f"table {self.spec.name!r}: key column {key!r} has null values")

    def replace(self, rows: pa.RecordBatchReader | pa.Table, position: int) -> int:
        """Overwrite the table with ``rows`` (a snapshot, or the state after a TRUNCATE).

        ``rows`` carry ``_kirana_seq`` and no ``_kirana_op``. Returns rows written.
        """
        if isinstance(rows, pa.Table):
            rows = rows.to_reader()
        table = self._table()
        if table is None:
            table = self._create(rows.schema)
        counted = _CountingReader(rows)
        try:
            write_deltalake(
                self.path,
                counted.reader(),
                mode="overwrite",
                schema_mode="merge",
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(self.app_id, position)]
                ),
            )
        except Exception as exc:
            if counted.error is not None:  # the source's own error, not delta-rs's wrapping
                raise counted.error from exc
            raise
        return counted.rows

    def apply(
        self,
        changes: pa.Table,
        position: int,
        truncated_at: int | None = None,
        *,
        existing_rows: dict[str, pa.Scalar] | None = None,
    ) -> dict:
        """Merge a batch of changes (with ``_kirana_op`` and ``_kirana_seq``) in one commit.

        Changes at or below the table's applied position are skipped (a replay).
        ``existing_rows`` gives a column the source added the value the rows it
        already had take (its default). Returns counts of what the merge did.
        """
        applied = self.applied_position()
        if applied is not None and applied >= position:
            return {"skipped": changes.num_rows}
        if applied is not None and changes.num_rows:
            changes = changes.filter(pc.greater(changes.column(SEQ), applied))
        table = self._table()
        changes, unavailable = resolve_unchanged(
            changes,
            self.spec,
            self._current_rows,
            {} if table is None else {f.name: f.type for f in arrow_schema(table)},
        )
        if unavailable:
            log.warning("%s: values never sent and not known before: %s", self.path, unavailable)
        if truncated_at is not None and (applied is None or truncated_at > applied):
            keep = changes.filter(pc.not_equal(changes.column(OP), DELETE))
            latest = newest_per_key(keep, self.spec)
            written = self.replace(latest.drop_columns([OP]), position)
            return {"truncated": True, "rows": written, "unavailable": unavailable}
        if changes.num_rows == 0:
            return {"rows": 0}
        self._check(changes)
        latest = newest_per_key(changes, self.spec)
        table = self._table()
        if table is None:
            table = self._create(latest.schema)
        if self._add_columns(table, latest.schema, existing_rows or {}):
            table = self._table()
        gone = [c for c in arrow_schema(table).names if c not in latest.column_names]
        latest = conform(latest, arrow_schema(table))
        metrics = dict(self._merge(latest, position))
        metrics["unavailable"] = unavailable
        metrics["columns_not_sent"] = gone
        self._commits += 1
        if self._commits % COMPACT_EVERY_COMMITS == 0:
            self.compact()
        return metrics

    def _current_rows(self, keys: list[tuple], columns: list[str]) -> dict[tuple, dict]:
        """The lake's current values of ``columns`` for each of ``keys`` it holds."""
        table = self._table()
        if table is None or not keys:
            return {}
        have = set(arrow_schema(table).names)
        key_columns = list(self.spec.key)
        wanted = None
        for i, name in enumerate(key_columns):
            test = pc.field(name).isin(sorted({k[i] for k in keys}, key=repr))
            wanted = test if wanted is None else wanted & test
        found = (
            table.to_pyarrow_dataset()
            .to_table(columns=key_columns + [c for c in columns if c in have], filter=wanted)
            .to_pylist()
        )
        targets = set(keys)
        out = {}
        for row in found:
            key = tuple(row.pop(k) for k in key_columns)
            if key in targets:
                out[key] = row
        return out

    def _add_columns(
        self, table: DeltaTable, incoming: pa.Schema, existing_rows: dict[str, pa.Scalar]
    ) -> bool:
        """Add columns the source has grown, in their own commit, before merging.

        Not the merge's ``merge_schema``: with it, delta-rs 1.6 fills a new column
        even on target rows the merge did not update. A column with a value for
        existing rows (PostgreSQL's catalog default) is added by rewriting the table
        with that value, in one commit, so a crash leaves it either absent or filled.
        """
        have = set(arrow_schema(table).names)
        new = [f.with_nullable(True) for f in incoming if f.name not in have and f.name != OP]
        if not new:
            return False
        filled = {f.name: existing_rows[f.name] for f in new if f.name in existing_rows}
        filled = {name: value for name, value in filled.items() if value.is_valid}
        if filled and table.version() is not None:
            rows = without_views(pa.table(table.to_pyarrow_table()))
            for f in new:
                value = filled.get(f.name)
                column = (
                    pa.array([value.as_py()] * rows.num_rows, f.type)
                    if value is not None
                    else pa.nulls(rows.num_rows, f.type)
                )
                rows = rows.append_column(f, column)
            write_deltalake(self.path, rows, mode="overwrite", schema_mode="merge")
            log.info("%s: added column(s) %s, existing rows get %s", self.path, new, filled)
            return True
        table.alter.add_columns([DeltaField.from_arrow(f) for f in new])
        log.info("%s: added column(s) %s", self.path, [f.name for f in new])
        return True

    def _merge(self, latest: pa.Table, position: int) -> dict:
        keys = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in self.spec.key)
        newer = newer_than(self.spec)
        is_delete = f"s.{quote(OP)} = '{DELETE}'"
        for attempt in range(5):
            table = self._table()
            try:
                return (
                    table.merge(
                        latest,
                        predicate=keys,
                        source_alias="s",
                        target_alias="t",
                        commit_properties=CommitProperties(
                            app_transactions=[Transaction(self.app_id, position)]
                        ),
                    )
                    .when_matched_delete(predicate=f"{is_delete} AND {newer}")
                    .when_matched_update_all(
                        predicate=f"NOT {is_delete} AND {newer}", except_cols=[OP]
                    )
                    .when_not_matched_insert_all(predicate=f"NOT {is_delete}", except_cols=[OP])
                    .execute()
                )
            except CommitFailedError:
                if attempt == 4:
                    raise
                time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def compact(self) -> None:
        """Merge the small files many merges leave behind (readers are unaffected)."""
        table = self._table()
        if table is not None:
            table.optimize.compact()
            table.create_checkpoint()


def changes_since(path: Path, version: int, *, include_preimage: bool = False) -> pa.Table:
    """Rows changed by commits after ``version`` (the change data feed).

    Each row carries ``_change_type`` (``insert``, ``update_postimage``,
    ``delete``; ``update_preimage`` only when asked), ``_commit_version`` and
    ``_commit_timestamp``. Pass the largest ``_commit_version`` you saw next
    time to read on from there.
    """
    table = DeltaTable(path)
    if version >= table.version():
        schema = arrow_schema(table)
        return pa.table(
            {f.name: pa.array([], f.type) for f in schema}
            | {
                "_change_type": pa.array([], pa.string()),
                "_commit_version": pa.array([], pa.int64()),
                "_commit_timestamp": pa.array([], pa.timestamp("us")),
            }
        )
    changes = without_views(pa.table(table.load_cdf(starting_version=version + 1)))
    if not include_preimage:
        changes = changes.filter(pc.not_equal(changes.column("_change_type"), "update_preimage"))
    return changes.sort_by([("_commit_version", "ascending")])


def without_views(table: pa.Table) -> pa.Table:
    """The same table with string/binary *view* columns (what delta-rs returns) made plain."""
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    fields = [pa.field(f.name, plain.get(f.type, f.type), f.nullable) for f in table.schema]
    return table.cast(pa.schema(fields))


class _CountingReader:
    """Counts rows as a RecordBatchReader is consumed by a writer."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader = reader
        self.rows = 0
        self.error: Exception | None = None

    def reader(self) -> pa.RecordBatchReader:
        def batches():
            try:
                for batch in self._reader:
                    self.rows += batch.num_rows
                    yield batch
            except Exception as exc:
                self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(self._reader.schema, batches())
