"""``kirana warehouse export``: lake tables into a PostgreSQL schema, incrementally."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail

warehouse_app = typer.Typer(
    help="The warehouse: every lake table by name (`kirana sql`), exported to PostgreSQL.",
    no_args_is_help=True,
)


@warehouse_app.command("export")
def export(
    dsn: Annotated[
        str | None, typer.Option(help="libpq DSN of the warehouse \\[default: warehouse.dsn].")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Target schema \\[default: warehouse.schema_name].")
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", "-t", help="Lake table by its SQL name (repeat; default: all)."),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(help="TABLE=COL[,COL] for tables whose key Kirana does not know (repeat)."),
    ] = None,
    full: Annotated[bool, typer.Option(help="Reload the tables from scratch.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Export lake tables into PostgreSQL: only what changed since the last export."""
    from kirana.config import load_settings
    from kirana.lake.catalog import lake_tables
    from kirana.warehouse.export import ExportError, export_tables

    settings = load_settings(data_dir)
    target = dsn or settings.warehouse.dsn
    if not target:
        raise fail("no warehouse: pass --dsn or set warehouse.dsn (KIRANA_WAREHOUSE__DSN)")
    keys = dict(settings.warehouse.keys)
    for value in key or []:
        name, sep, columns = value.partition("=")
        if not sep or not columns:
            raise fail(f"`--key {value}`: expected TABLE=COLUMN[,COLUMN]")
        keys[name] = [c.strip() for c in columns.split(",")]
    available = lake_tables(settings.lake_dir)
    names = table or settings.warehouse.tables or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise fail(f"no lake table(s) {unknown}; lake tables: {', '.join(available) or 'none'}")

    def progress(name: str, report: dict) -> None:
        typer.echo(f"{name}: {json.dumps(report)}", err=True)

    try:
        reports = export_tables(
            settings.lake_dir,
            target,
            schema or settings.warehouse.schema_name,
            names,
            keys=keys,
            full=full,
            on_table=progress,
        )
    except ExportError as exc:
        from kirana.redaction import scrub, secrets_in

        raise fail(scrub(str(exc), secrets_in(target)) or "") from exc
    typer.echo(json.dumps(reports))
