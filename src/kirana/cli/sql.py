"""``kirana sql``: DuckDB over the lake's tables by name."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def sql(
    query: Annotated[
        str, typer.Argument(help='SQL, e.g. "SELECT event, count(*) FROM events GROUP BY 1".')
    ],
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    max_rows: Annotated[int, typer.Option(help="Rows to show in table format.")] = 100,
    data_dir: DataDir = None,
) -> None:
    """Run SQL over the lake (tables: events, and every other Delta table in the lake)."""
    import duckdb

    from kirana.config import load_settings
    from kirana.lake.catalog import connect, lake_tables

    settings = load_settings(data_dir)
    conn = connect(settings.lake_dir)
    try:
        relation = conn.sql(query)
    except duckdb.Error as exc:
        tables = ", ".join(lake_tables(settings.lake_dir)) or "none yet (send events first)"
        raise fail(f"{exc}\nlake tables: {tables}") from exc
    if relation is None:
        return
    columns = relation.columns
    rows = relation.fetchall()
    if format is Format.json:
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str))
    elif format is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Column, Table
        from rich.text import Text

        # Text cells, not strings: rich reads strings as markup (`[ab]` would vanish).
        table = Table(*(Column(Text(c)) for c in columns))
        for row in rows[:max_rows]:
            table.add_row(*(Text("NULL" if v is None else str(v)) for v in row))
        console = Console()
        console.print(table)
        if len(rows) > max_rows:
            console.print(f"({len(rows)} rows, {max_rows} shown; use --max-rows or --format csv)")
