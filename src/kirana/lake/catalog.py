"""DuckDB over the lake: every Delta table under ``<data-dir>/lake`` by its name.

DuckDB's own delta extension cannot be downloaded on every machine, so each
table is registered as ``DeltaTable(...).to_pyarrow_dataset()``: DuckDB still
pushes filters and projections down into the Parquet scan.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from deltalake import DeltaTable


def _is_table(path: Path) -> bool:
    return path.is_dir() and (path / "_delta_log").is_dir()


def sql_name(relative: Path) -> str:
    """A table's SQL name from its folder under the lake.

    ``events`` -> ``events``; ``replicated/<source>/<table>`` -> ``<source>_<table>``;
    any other nesting joins its folders with ``_`` (``models/recs`` -> ``models_recs``).
    """
    parts = list(relative.parts)
    if len(parts) > 1 and parts[0] == "replicated":
        parts = parts[1:]
    return "_".join(parts)


def lake_tables(lake_dir: Path) -> dict[str, Path]:
    """Every Delta table (a folder with a ``_delta_log``) under ``lake_dir``, by SQL name.

    Tables directly under the lake keep their folder name; nested ones are named
    by :func:`sql_name`. Folders starting with ``_`` or ``.`` are skipped, and a
    table's own folders are never searched. On a clash the shallower table wins.
    """
    if not lake_dir.is_dir():
        return {}
    found: dict[str, Path] = {}
    level = [lake_dir]
    while level:
        deeper = []
        for folder in level:
            for p in sorted(folder.iterdir()):
                if not p.is_dir() or p.name.startswith(("_", ".")):
                    continue
                if _is_table(p):
                    found.setdefault(sql_name(p.relative_to(lake_dir)), p)
                elif "=" not in p.name:
                    deeper.append(p)
        level = deeper
    return dict(sorted(found.items()))


def connect(lake_dir: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per lake table, in UTC."""
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    for name, path in lake_tables(lake_dir).items():
        dataset = DeltaTable(path).to_pyarrow_dataset()
        conn.register(name, dataset)
    return conn
