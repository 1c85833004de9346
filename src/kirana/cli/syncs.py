"""``kirana syncs …``: reverse-ETL syncs — create, list, run, runs, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kirana.cli.destinations import open_delivery_store, read_json
from kirana.cli.kind_help import command_with_help
from kirana.cli.options import DataDir, fail

syncs_app = typer.Typer(
    help="Reverse ETL: send lake query results or audiences to a destination, diffed.",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(help="Sync name.")]


def _known():
    from kirana.destinations.config import ConfigError
    from kirana.destinations.service import AlreadyExists, NotFound
    from kirana.syncs.runner import SyncBusy

    return (ConfigError, NotFound, AlreadyExists, SyncBusy)


_SOURCE_KINDS = {
    "sql": "a DuckDB query over lake tables by name (what `kirana sql` sees)",
    "audience": "an audience's members: profile_id, user_id, anonymous_id, email",
}
_MODES = {
    "upsert": "new and changed rows",
    "mirror": "also a delete for each key that left the source",
    "insert": "only keys never sent before",
}


def _kinds() -> str:
    from kirana.cli.kind_help import kinds_help, settings_line
    from kirana.destinations.config import KIND_SETTINGS
    from kirana.syncs.model import SyncConfig
    lines = [
        "Fields (docs/destinations.md, \"Reverse-ETL syncs\"):",
        "",
        settings_line(SyncConfig),
        "",
        "Source kinds (exactly one):",
        "",
        *(f"source.{kind}: {what}" for kind, what in _SOURCE_KINDS.items()),
        "",
        "Modes:",
        "",
        *(f"{mode}: {what}" for mode, what in _MODES.items()),
        "",
        "destination: the name of a destination; their kinds and settings:",
        "",
        kinds_help(KIND_SETTINGS),
    ]
    return "\n".join(lines)


@syncs_app.command("create", cls=command_with_help(_kinds))
def create(
    file: Annotated[Path, typer.Option("--file", "-f", help="JSON definition ('-': stdin).")],
    replace: Annotated[bool, typer.Option(help="Overwrite a sync of the same name.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a sync from JSON: name, source {sql|audience}, key, destination, mapping, mode."""
    from kirana.syncs import service

    try:
        config = service.create(open_delivery_store(data_dir), read_json(file), replace=replace)
    except _known() as exc:
        raise fail(str(exc)) from exc
    typer.echo(config.model_dump_json(indent=2))


@syncs_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List syncs with their last run."""
    from kirana.syncs import service

    for item in service.listing(open_delivery_store(data_dir)):
        last = item["last_run"]
        summary = f"{last['status']} run {last['id']}" if last else "never run"
        typer.echo(f"{item['name']}\t{item['mode']}\t-> {item['destination']}\t{summary}")


@syncs_app.command("run")
def run(name: Name, data_dir: DataDir = None) -> None:
    """Run a sync now: diff against the last snapshot and queue only the changes."""
    from rich.console import Console

    from kirana.config import load_settings
    from kirana.syncs import service

    settings = load_settings(data_dir)
    with Console(stderr=True).status(f"running sync {name}…"):
        try:
            report = service.run(settings, open_delivery_store(data_dir), name)
        except _known() as exc:
            raise fail(str(exc)) from exc
    typer.echo(json.dumps(report, indent=2))


@syncs_app.command("runs")
def runs(
    name: Name,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 20,
    data_dir: DataDir = None,
) -> None:
    """Run history, newest first, as JSON lines (row counts and errors)."""
    from kirana.syncs import service

    try:
        items = service.runs(open_delivery_store(data_dir), name, limit)
    except _known() as exc:
        raise fail(str(exc)) from exc
    for item in items:
        typer.echo(json.dumps(item))


@syncs_app.command("delete")
def delete(name: Name, data_dir: DataDir = None) -> None:
    """Delete a sync and its snapshot (queued changes are still delivered)."""
    from kirana.config import load_settings
    from kirana.syncs import service

    try:
        service.delete(load_settings(data_dir), open_delivery_store(data_dir), name)
    except _known() as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"deleted {name}")
