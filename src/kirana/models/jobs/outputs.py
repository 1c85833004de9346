"""Job outputs as versioned Delta tables in the lake, one table per output.

Each successful run overwrites its output table in ONE Delta commit, so readers (``kirana
sql``, Spark, the publisher) see either the previous run's rows or the new run's, never a
mix. The commit carries the run id in its metadata and every row carries it in ``run_id``;
the run registry keeps the version each run wrote. Rolling an output back is a Delta
*restore* of that version: a new commit whose content is the old one, so history only grows
and a rollback can itself be rolled back.

The tables sit directly under the lake directory as ``model_<output>`` so that
`kirana.lake.catalog` exposes them to ``kirana sql`` by that name. Replaced versions are
vacuumed after ``models.output_retention_days``; a run older than that cannot be restored.
Tables use neither deletion vectors nor column mapping (Spark reads their Parquet files).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

TABLE_PREFIX = "model_"
RUN_ID_KEY = "kirana.run_id"


class OutputGone(RuntimeError):
    """A run's output version no longer exists (vacuumed); it cannot be restored."""


def table_name(output: str) -> str:
    """The lake (and ``kirana sql``) name of an output."""
    return f"{TABLE_PREFIX}{output}"


def table_path(lake_dir: Path, output: str) -> Path:
    return lake_dir / table_name(output)


def current_version(lake_dir: Path, output: str) -> int | None:
    """The output table's latest version (None before its first run)."""
    path = table_path(lake_dir, output)
    if not (path / "_delta_log").is_dir():
        return None
    return DeltaTable(path).version()


def write_output(lake_dir: Path, output: str, table: pa.Table, run_id: str) -> int:
    """Replace the output's rows with ``table`` (plus a ``run_id`` column); returns the version."""
    rows = table.replace_schema_metadata(None).append_column(
        pa.field("run_id", pa.string()), pa.array([run_id] * table.num_rows, pa.string())
    )
    path = table_path(lake_dir, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        path,
        rows,
        mode="overwrite",
        schema_mode="overwrite",
        commit_properties=CommitProperties(custom_metadata={RUN_ID_KEY: run_id}),
    )
    return DeltaTable(path).version()


def read_output(lake_dir: Path, output: str, version: int | None = None) -> pa.Table:
    """The output's rows (at ``version``, default the latest)."""
    try:
        return DeltaTable(table_path(lake_dir, output), version=version).to_pyarrow_table()
    except (DeltaError, OSError) as exc:
        raise OutputGone(
            f"output {output!r} version {version} cannot be read ({exc}); its files may have "
            "been vacuumed (models.output_retention_days) — rerun the job instead"
        ) from exc


def restore_output(lake_dir: Path, output: str, version: int, run_id: str) -> int:
    """Make ``version`` the output's content again (a new commit); returns the new version."""
    table = DeltaTable(table_path(lake_dir, output))
    try:
        table.restore(
            version, commit_properties=CommitProperties(custom_metadata={RUN_ID_KEY: run_id})
        )
    except (DeltaError, OSError) as exc:
        raise OutputGone(
            f"cannot restore output {output!r} to version {version} ({exc}); its files may "
            "have been vacuumed (models.output_retention_days) — rerun the job instead"
        ) from exc
    return DeltaTable(table_path(lake_dir, output)).version()


def vacuum_output(lake_dir: Path, output: str, retention: timedelta) -> int:
    """Delete files no version younger than ``retention`` uses; returns how many."""
    table = DeltaTable(table_path(lake_dir, output))
    hours = max(0, int(retention.total_seconds() // 3600))
    removed = table.vacuum(retention_hours=hours, enforce_retention_duration=False, dry_run=False)
    return len(removed)


def erase_from_outputs(lake_dir: Path, customer_ids: list[str]) -> int:
    """Delete an erased person's rows from every per-customer output, and their old versions.

    For the privacy tools: outputs keyed by ``user_id`` (the lake's user id, else anonymous
    id) lose those rows in a new commit, then replaced files are vacuumed at once, so no
    earlier version keeps them either. That also ends rollback to versions before the
    erasure, which `read_output` / `restore_output` then report clearly.
    """
    from kirana.lake.catalog import lake_tables

    if not customer_ids:
        return 0
    listed = ", ".join("'" + c.replace("'", "''") + "'" for c in customer_ids)
    deleted = 0
    for name, path in lake_tables(lake_dir).items():
        if not name.startswith(TABLE_PREFIX):
            continue
        table = DeltaTable(path)
        if "user_id" not in table.schema().to_arrow().names:
            continue
        for attempt in range(10):
            try:
                metrics = DeltaTable(path).delete(f"user_id IN ({listed})")
                deleted += int(metrics.get("num_deleted_rows", 0))
                break
            except CommitFailedError:  # a job committed meanwhile: delete from its version
                if attempt == 9:
                    raise
                time.sleep(0.2 * (attempt + 1))
        DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return deleted
