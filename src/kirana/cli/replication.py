"""``kirana sources add-postgres | add-mysql | add-files | sync | status | changes | remove``.

Replication sources share the ``kirana sources`` group with event sources: both
are where data comes from. The commands register themselves on that group when
this module is imported (``cli/main.py`` does).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kirana.cli.admin import sources_app
from kirana.cli.options import DataDir, fail

TableOpt = Annotated[
    list[str],
    typer.Option("--table", "-t", help="A table to replicate, `table` or `schema.table` (repeat)."),
]
KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key", help="TABLE=COL[,COL]: record key when it is not the primary key (repeat)."
    ),
]


def _state(data_dir: Path | None):
    from kirana.config import load_settings
    from kirana.replication.state import ReplicationState

    settings = load_settings(data_dir)
    return settings, ReplicationState(settings.state_dir)


def _per_table(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        table, sep, columns = value.partition("=")
        if not sep or not table or not columns:
            raise fail(f"`{option} {value}`: expected TABLE=COLUMN[,COLUMN]")
        out[table] = columns
    return out


def _tables(tables: list[str], keys: list[str] | None) -> list[dict[str, Any]]:
    key_of = _per_table(keys, "--key")
    unknown = set(key_of) - set(tables)
    if unknown:
        raise fail(f"`--key` names table(s) {sorted(unknown)} that are not given with --table")
    return [
        {"name": t, "key": [c.strip() for c in key_of[t].split(",")] if t in key_of else []}
        for t in tables
    ]


def _add(data_dir: Path | None, definition: dict[str, Any], check: bool = True) -> None:
    from kirana.replication.checks import check_tables
    from kirana.replication.specs import parse_source_config

    try:
        config = parse_source_config(definition)
        if check:  # a keyless or missing table is refused now, not at the first sync
            check_tables(config)
        _, state = _state(data_dir)
        state.add(config)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"added {config.kind} source {config.name!r}; copy it now with "
        f"`kirana sources sync {config.name}` (or let `kirana serve` do it)"
    )


@sources_app.command("add-postgres")
def add_postgres(
    name: Annotated[str, typer.Argument(help="Source name; tables appear as NAME_TABLE.")],
    dsn: Annotated[str, typer.Option(help="libpq DSN or URL of a user with REPLICATION.")],
    table: TableOpt,
    key: KeyOpt = None,
    check: Annotated[
        bool,
        typer.Option(
            help="Connect first: refuse a DSN that does not connect, a server whose wal_level "
            "is not logical, a user without REPLICATION (--no-check: save it as given)."
        ),
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Replicate PostgreSQL tables: a snapshot, then logical replication (pgoutput)."""
    tables = _tables(table, key)
    if check:
        _check_postgres(dsn)
    _add(data_dir, {"kind": "postgres", "name": name, "dsn": dsn, "tables": tables}, check)


def _check_postgres(dsn: str) -> None:
    """Refuse, before anything is saved, a source that could never replicate: otherwise the
    mistake surfaces later as a sync that fails every few seconds."""
    import psycopg2
    from psycopg2.extensions import parse_dsn

    from kirana.redaction import scrub, secrets_in

    secrets = secrets_in(dsn)

    def why(exc: Exception) -> str:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, not libpq's
        return scrub(text, secrets) or type(exc).__name__

    try:
        parse_dsn(dsn)
    except psycopg2.Error as exc:
        raise fail(
            f"--dsn is not a libpq connection string or URL ({why(exc)}); e.g. "
            "'host=db port=5432 user=repl dbname=shop' or postgresql://repl@db:5432/shop"
        ) from None
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        raise fail(
            f"cannot connect with --dsn: {why(exc)}; check host, port, user, password and "
            "dbname (or save it unchecked with --no-check)"
        ) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            (wal_level,) = cur.fetchone()
            cur.execute(
                "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
                "WHERE rolname = current_user"
            )
            user, can_replicate = cur.fetchone()
    except psycopg2.Error as exc:
        raise fail(f"cannot read the server's settings: {why(exc)}") from None
    finally:
        conn.close()
    if wal_level != "logical":
        raise fail(
            f"the server's wal_level is {wal_level!r}; logical replication needs 'logical': "
            "run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL "
            "(docs/replication.md)"
        )
    if not can_replicate:
        raise fail(
            f"user {user!r} may not replicate; run ALTER ROLE {user} REPLICATION; "
            "or use a user that may"
        )


@sources_app.command("add-mysql")
def add_mysql(
    name: Annotated[str, typer.Argument(help="Source name; tables appear as NAME_TABLE.")],
    dsn: Annotated[str, typer.Option(help="mysql://user:password@host:3306/database")],
    table: TableOpt,
    key: KeyOpt = None,
    server_id: Annotated[int, typer.Option(help="Replica id to announce (0: derived).")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Replicate MySQL/MariaDB tables: a snapshot, then the row-based binlog."""
    _add(
        data_dir,
        {
            "kind": "mysql",
            "name": name,
            "dsn": dsn,
            "tables": _tables(table, key),
            "server_id": server_id,
        },
    )


@sources_app.command("add-table")
def add_table(
    name: Annotated[str, typer.Argument(help="The PostgreSQL or MySQL source.")],
    table: TableOpt,
    key: KeyOpt = None,
    data_dir: DataDir = None,
) -> None:
    """Add tables to a source. PostgreSQL copies only them on the next sync (the other
    tables go on streaming); MySQL needs `sync --resnapshot` for their existing rows."""
    import json

    from kirana.replication.checks import check_tables
    from kirana.replication.specs import parse_source_config
    from kirana.replication.state import SourceNotFound

    tables = _tables(table, key)
    _, state = _state(data_dir)
    try:
        current = json.loads(state.get(name).model_dump_json())
        if current.get("kind") != "files":  # refuse a keyless table before saving
            check_tables(parse_source_config({**current, "tables": current["tables"] + tables}))
        config = state.add_tables(name, tables)
    except (SourceNotFound, ValueError) as exc:
        raise fail(str(exc)) from exc
    names = ", ".join(t["name"] for t in tables)
    typer.echo(f"added {names} to {config.name!r}; `kirana sources sync {name}` copies them")


class FileFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


@sources_app.command("add-files")
def add_files(
    name: Annotated[str, typer.Argument(help="Source name; its table appears as NAME_TABLE.")],
    path: Annotated[Path, typer.Option(help="Folder the files are dropped into.")],
    format: Annotated[FileFormat, typer.Option("--format", help="File format.")],
    key: Annotated[str, typer.Option(help="Record key column(s), comma-separated.")],
    precombine: Annotated[
        str | None, typer.Option(help="Version column: older versions never overwrite newer.")
    ] = None,
    table: Annotated[str, typer.Option(help="Lake table name.")] = "data",
    delete_column: Annotated[
        str | None, typer.Option(help="Column whose true value deletes the row.")
    ] = None,
    settle_seconds: Annotated[
        float, typer.Option(help="Treat a file as complete once unchanged this long.")
    ] = 5.0,
    data_dir: DataDir = None,
) -> None:
    """Replicate files (CSV, Parquet, JSON lines) dropped into a folder, each once."""
    _add(
        data_dir,
        {
            "kind": "files",
            "name": name,
            "path": str(path.resolve()),
            "format": format.value,
            "table": table,
            "key": [c.strip() for c in key.split(",") if c.strip()],
            "precombine": precombine,
            "delete_column": delete_column,
            "settle_seconds": settle_seconds,
        },
    )


@sources_app.command("sync")
def sync(
    name: Annotated[str, typer.Argument(help="Replication source name.")],
    follow: Annotated[bool, typer.Option(help="Keep streaming until interrupted.")] = False,
    resnapshot: Annotated[
        bool, typer.Option(help="Copy every table afresh (PostgreSQL/MySQL) before streaming.")
    ] = False,
    max_rows: Annotated[int, typer.Option(help="At most this many rows per commit.")] = 50_000,
    data_dir: DataDir = None,
) -> None:
    """Bring a source's lake tables up to date (snapshot on the first run), then stop."""
    from kirana.replication.state import SourceBusy, SourceNotFound
    from kirana.replication.sync import Replicator, SyncReport

    settings, state = _state(data_dir)
    try:
        config = state.get(name)
    except SourceNotFound as exc:
        raise fail(str(exc)) from exc
    if resnapshot:
        state.reset_snapshot(name)

    def progress(report: SyncReport) -> None:
        lag = "" if report.lag_seconds is None else f", lag {report.lag_seconds:.1f} s"
        typer.echo(
            f"{name}: snapshot {report.snapshot_rows:,} rows, streamed {report.rows:,} rows in "
            f"{report.transactions:,} transactions{lag}",
            err=True,
        )

    replicator = Replicator(config, settings.lake_dir, state, max_rows=max_rows)
    try:
        # a round of the `serve` job ends once caught up: wait for it rather than fail
        report = replicator.run(follow=follow, on_batch=progress, lock_wait_seconds=30)
    except SourceBusy as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        from kirana.redaction import scrub
        from kirana.replication.specs import secret_values

        message = scrub(f"{type(exc).__name__}: {exc}", secret_values(config))
        raise fail(
            f"{message}\n(see `kirana sources status {name}`; "
            "the next sync resumes from the last committed position)"
        ) from exc
    typer.echo(
        json.dumps(
            {
                "source": name,
                "snapshot_rows": report.snapshot_rows,
                "rows": report.rows,
                "transactions": report.transactions,
                "tables": report.tables,
                "seconds": round(report.seconds, 3),
            }
        )
    )


@sources_app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="One source (default: all).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Replication sources: position, lag, rows applied, last error; files for file drops."""
    from kirana.replication.service import source_status
    from kirana.replication.state import SourceNotFound

    settings, state = _state(data_dir)
    try:
        names = [name] if name else [c.name for c in state.list()]
        for n in names:
            typer.echo(json.dumps(source_status(state, settings.lake_dir, n), default=str))
    except SourceNotFound as exc:
        raise fail(str(exc)) from exc


@sources_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Replication source name.")],
    drop_slot: Annotated[
        bool, typer.Option(help="PostgreSQL: also drop the replication slot and publication.")
    ] = True,
    data_dir: DataDir = None,
) -> None:
    """Forget a replication source (its lake tables stay)."""
    from kirana.replication.service import SourceUnreachable, remove_source
    from kirana.replication.state import SourceBusy, SourceNotFound

    _, state = _state(data_dir)
    try:
        remove_source(state, name, drop_slot=drop_slot)
    except (SourceNotFound, SourceBusy, SourceUnreachable) as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"removed {name!r} (its lake tables stay under lake/replicated/{name})")


class ChangesFormat(StrEnum):
    json = "json"
    csv = "csv"


@sources_app.command("changes")
def changes(
    name: Annotated[str, typer.Argument(help="Replication source name.")],
    table: Annotated[str, typer.Argument(help="Lake table of the source, e.g. `customers`.")],
    since: Annotated[
        int, typer.Option(help="Delta version already seen: print changes after it.")
    ] = -1,
    format: Annotated[ChangesFormat, typer.Option("--format", "-f")] = ChangesFormat.json,
    data_dir: DataDir = None,
) -> None:
    """Rows changed after Delta version --since (insert, update_postimage, delete)."""
    from kirana.config import load_settings
    from kirana.replication.lake import changes_since, table_path

    path = table_path(load_settings(data_dir).lake_dir, name, table)
    if not (path / "_delta_log").is_dir():
        raise fail(f"no lake table {path}; run `kirana sources sync {name}` first")
    rows = changes_since(path, since)
    if format is ChangesFormat.csv:
        import pyarrow.csv as pcsv

        pcsv.write_csv(rows, sys.stdout.buffer)
        return
    for row in rows.to_pylist():
        typer.echo(json.dumps(row, default=str))


def replication_rows(data_dir: Path | None) -> list[tuple[str, str, str, str]]:
    """(name, kind, where, tables) for ``kirana sources list``."""
    from kirana.replication.specs import redacted

    _, state = _state(data_dir)
    rows = []
    for config in state.list():
        shown = redacted(config)
        where = shown.get("dsn") or shown.get("path", "")
        if config.kind == "files":
            tables = config.table
        else:
            tables = ", ".join(t.name for t in config.tables)
        rows.append((config.name, config.kind, where, tables))
    return rows
