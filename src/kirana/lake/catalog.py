"""DuckDB over the lake: every Delta table under ``<data-dir>/lake`` by its name.

DuckDB's own delta extension cannot be downloaded on every machine, so each
table is registered as ``DeltaTable(...).to_pyarrow_dataset()``: DuckDB still
pushes filters and projections down into the Parquet scan.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from deltalake import DeltaTable


def lake_tables(lake_dir: Path) -> dict[str, Path]:
    """Delta tables directly under ``lake_dir`` (a folder with a ``_delta_log``)."""
    if not lake_dir.is_dir():
        return {}
    return {
        p.name: p for p in sorted(lake_dir.iterdir()) if p.is_dir() and (p / "_delta_log").is_dir()
    }


def connect(lake_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per lake table, in UTC."""
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    for name, path in lake_tables(lake_dir).items():
        dataset = DeltaTable(path).to_pyarrow_dataset()
        conn.register(name, dataset)
    return conn
