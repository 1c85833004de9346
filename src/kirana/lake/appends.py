"""Appending to a lake table: one append, retried when another writer's commit got in
first, and the compaction every appended table needs now and then."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError


def append_with_retries(path: Path, rows: pa.Table, attempts: int = 5, **options: Any) -> None:
    """``write_deltalake(path, rows, mode="append", **options)``, tried ``attempts`` times
    with a doubling back-off from 0.1 s: an append conflicts only with a concurrent change
    of the table's metadata (compaction, an erasure's rewrite), which a retry outlives."""
    for attempt in range(attempts):
        try:
            write_deltalake(path, rows, mode="append", **options)
            return
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt)


def compact_table(table: DeltaTable, vacuum_hours: float) -> dict[str, Any]:
    """Merge small files, checkpoint, vacuum files older than ``vacuum_hours`` and drop
    old log entries; returns the compaction's metrics. Many small appends (one a second)
    make many small files, which every reader must open."""
    metrics = table.optimize.compact()
    table.create_checkpoint()
    table.vacuum(retention_hours=vacuum_hours, dry_run=False, enforce_retention_duration=False)
    table.cleanup_metadata()
    return metrics
