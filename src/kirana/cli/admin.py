"""``kirana sources``, ``kirana tokens``, ``kirana quarantine``, ``kirana status``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail

sources_app = typer.Typer(
    help="Sources: where events come from, each with its write key.", no_args_is_help=True
)
tokens_app = typer.Typer(
    help="Access tokens for the management APIs and the console.", no_args_is_help=True
)
quarantine_app = typer.Typer(
    help="Events that were rejected, with the reason.", no_args_is_help=True
)


def _store(data_dir):
    from kirana.config import load_settings
    from kirana.runtime import open_store

    return open_store(load_settings(data_dir))


@sources_app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="A name for the source, e.g. `ios-app`.")],
    data_dir: DataDir = None,
) -> None:
    """Create a source and print its write key."""
    from kirana.store.protocol import AlreadyExists

    store = _store(data_dir)
    try:
        source = store.create_source(name)
    except AlreadyExists as exc:
        raise fail(f"{exc}; see its key with `kirana sources list`") from exc
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(source.write_key)


@sources_app.command("list")
def sources_list(data_dir: DataDir = None) -> None:
    """List sources: event sources with their write keys, then replication sources."""
    from rich.console import Console
    from rich.table import Table

    from kirana.cli.replication import replication_rows

    table = Table("name", "id", "write key", "created", title="event sources")
    for s in _store(data_dir).list_sources():
        table.add_row(s.name, s.id, s.write_key, s.created_at.isoformat(timespec="seconds"))
    Console().print(table)
    replicated = replication_rows(data_dir)
    if replicated:
        table = Table("name", "kind", "from", "tables", title="replication sources")
        for row in replicated:
            table.add_row(*row)
        Console().print(table)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[
        str, typer.Option("--role", help="admin (read and change) or viewer (read only).")
    ] = "viewer",
    data_dir: DataDir = None,
) -> None:
    """Create an access token and print it (it is shown only once)."""
    try:
        _, secret = _store(data_dir).create_token(name, role)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = None) -> None:
    """List access tokens (names and roles; secrets are never stored)."""
    for t in _store(data_dir).list_tokens():
        typer.echo(f"{t.id}\t{t.name}\t{t.role}\t{t.created_at.isoformat(timespec='seconds')}")


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="Only this source (by name).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 50,
    data_dir: DataDir = None,
) -> None:
    """List rejected events, oldest first, as JSON lines."""
    from kirana.store.protocol import NotFound

    store = _store(data_dir)
    try:
        source_id = store.source_by_name(source).id if source else None
    except NotFound as exc:
        raise fail(str(exc)) from exc
    for e in store.list_quarantined(source_id=source_id, limit=limit):
        row = {
            "offset": e.log_offset,
            "source_id": e.source_id,
            "received_at": e.received_at.isoformat(),
            "index": e.batch_index,
            "messageId": e.message_id,
            "code": e.code,
            "reason": e.reason,
            "raw": e.raw,
        }
        typer.echo(json.dumps(row))


def status(data_dir: DataDir = None) -> None:
    """Show the event log's size and how far each consumer has got."""
    from kirana.config import load_settings
    from kirana.lake.catalog import lake_tables

    settings = load_settings(data_dir)
    store = _store(data_dir)
    log_dir = settings.log_dir
    size = sum(p.stat().st_size for p in log_dir.glob("*.seg")) if log_dir.exists() else 0
    typer.echo(f"data dir     {settings.data_dir.resolve()}")
    typer.echo(f"event log    {size:,} bytes in {log_dir}")
    for name in ("quarantine",):
        typer.echo(f"consumer     {name}: position {store.get_position(name)}")
    for name, path in lake_tables(settings.lake_dir).items():
        typer.echo(f"lake table   {name}: {path}")
