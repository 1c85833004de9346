"""``kirana destinations …``: create, list, show, status, dead-letters, replay, delete."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kirana.cli.kind_help import command_with_help
from kirana.cli.options import DataDir, fail

destinations_app = typer.Typer(
    help="Destinations: where events, audiences and sync rows are delivered.",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(help="Destination name.")]


def open_delivery_store(data_dir: Path | None):
    from kirana.config import load_settings
    from kirana.destinations.store import DeliveryStore, store_path

    return DeliveryStore(store_path(load_settings(data_dir).state_dir))


def read_json(path: Path) -> dict[str, Any]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise fail(f"{path}: expected a JSON object")
    return value


def _call(fn, *args, **kwargs):
    from kirana.destinations.config import ConfigError
    from kirana.destinations.service import AlreadyExists, NotFound

    try:
        return fn(*args, **kwargs)
    except (ConfigError, NotFound, AlreadyExists) as exc:
        raise fail(str(exc)) from exc


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _kinds() -> str:
    from kirana.cli.kind_help import kinds_help
    from kirana.destinations.config import KIND_SETTINGS

    return (
        "Kinds and their settings (the JSON's `settings`; docs/destinations.md):\n\n"
        + kinds_help(KIND_SETTINGS)
    )


@destinations_app.command("create", cls=command_with_help(_kinds))
def create(
    file: Annotated[Path, typer.Option("--file", "-f", help="JSON definition ('-': stdin).")],
    replace: Annotated[
        bool, typer.Option(help="Overwrite a destination of the same name.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a destination from a JSON definition (see docs/destinations.md)."""
    from kirana.destinations import service
    from kirana.destinations.config import redacted

    store = open_delivery_store(data_dir)
    config = _call(service.create, store, read_json(file), replace=replace)
    _echo(redacted(config))


@destinations_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List destinations (name, kind, number of routes)."""
    store = open_delivery_store(data_dir)
    for config in store.destinations():
        typer.echo(f"{config.name}\t{config.kind}\t{len(config.routes)} route(s)")


@destinations_app.command("show")
def show(name: Name, data_dir: DataDir = None) -> None:
    """A destination's configuration (secrets masked) and health, as JSON."""
    from kirana.destinations import service

    _echo(_call(service.describe, open_delivery_store(data_dir), name))


@destinations_app.command("status")
def status(data_dir: DataDir = None) -> None:
    """Health of every destination: queued, dead, lag, error rate, last error."""
    from kirana.destinations import service

    rows = service.status(open_delivery_store(data_dir))
    if not rows:
        typer.echo("no destinations; create one with `kirana destinations create -f def.json`")
        return
    typer.echo(
        f"{'name':20} {'kind':9} {'queued':>7} {'dead':>6} {'lag s':>8} {'err 15m':>8}  last error"
    )
    for r in rows:
        typer.echo(
            f"{r['name']:20} {r['kind']:9} {r['queue_depth']:>7} {r['dead_letters']:>6} "
            f"{r['lag_seconds']:>8.1f} {r['error_rate_15m']:>8.1%}  {r['last_error'] or '-'}"
        )


@destinations_app.command("dead-letters")
def dead_letters(
    name: Name,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
    data_dir: DataDir = None,
) -> None:
    """Records that were refused or ran out of attempts, as JSON lines."""
    from kirana.destinations import service

    for item in _call(service.dead_letters, open_delivery_store(data_dir), name, limit):
        typer.echo(json.dumps(item, default=str))


@destinations_app.command("replay")
def replay(
    name: Name,
    record_id: Annotated[
        list[str] | None, typer.Option("--record-id", help="Replay only these (repeatable).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Queue dead letters again (all, or the given record ids)."""
    from kirana.destinations import service

    count = _call(service.replay, open_delivery_store(data_dir), name, record_id or None)
    typer.echo(f"{count} record(s) queued again for {name}")


@destinations_app.command("delete")
def delete(name: Name, data_dir: DataDir = None) -> None:
    """Delete a destination with its queue and dead letters."""
    from kirana.destinations import service

    _call(service.delete, open_delivery_store(data_dir), name)
    typer.echo(f"deleted {name}")
