"""``kirana traits …``, ``kirana audiences …``, ``kirana segments refresh``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kirana.cli.options import DataDir, fail

traits_app = typer.Typer(
    help="Computed traits: declarative aggregates over events.", no_args_is_help=True
)
audiences_app = typer.Typer(
    help="Audiences: who matches a definition, kept up to date.", no_args_is_help=True
)
segments_app = typer.Typer(help="Refresh computed traits and audiences.", no_args_is_help=True)

DefinitionFile = Annotated[
    Path, typer.Option("--file", "-f", help="JSON definition ('-' for standard input).")
]


def _store(data_dir: Path | None):
    from kirana.config import load_settings
    from kirana.runtime import open_profile_store

    settings = load_settings(data_dir)
    return settings, open_profile_store(settings)


def _read(path: Path) -> dict[str, Any]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{path}: not valid JSON ({exc})") from exc


def _save(kind: str, name: str, file: Path, data_dir: Path | None) -> None:
    from kirana.profiles import segments_service
    from kirana.segments.rules import DefinitionError

    _, store = _store(data_dir)
    try:
        saved = segments_service.save(store, kind, name, _read(file))
    except DefinitionError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    typer.echo(json.dumps(saved, indent=2))


def _list(kind: str, data_dir: Path | None) -> None:
    _, store = _store(data_dir)
    for d in store.definitions(kind):
        extra = f"\t{len(store.members(d.name))} members" if kind == "audience" else ""
        typer.echo(f"{d.name}\t{json.dumps(d.definition, sort_keys=True)}{extra}")
    store.close()


@traits_app.command("save")
def traits_save(
    name: Annotated[str, typer.Argument(help="Trait name, e.g. orders_30d.")],
    file: DefinitionFile,
    data_dir: DataDir = None,
) -> None:
    """Create or replace a computed trait from a JSON definition."""
    _save("computed_trait", name, file, data_dir)


@traits_app.command("list")
def traits_list(data_dir: DataDir = None) -> None:
    """List computed traits."""
    _list("computed_trait", data_dir)


@audiences_app.command("save")
def audiences_save(
    name: Annotated[str, typer.Argument(help="Audience name, e.g. loyal.")],
    file: DefinitionFile,
    data_dir: DataDir = None,
) -> None:
    """Create or replace an audience from a JSON definition."""
    _save("audience", name, file, data_dir)


@audiences_app.command("list")
def audiences_list(data_dir: DataDir = None) -> None:
    """List audiences with their sizes."""
    _list("audience", data_dir)


@audiences_app.command("estimate")
def audiences_estimate(file: DefinitionFile, data_dir: DataDir = None) -> None:
    """How many profiles an audience would hold now (nothing is saved)."""
    from kirana.profiles import segments_service
    from kirana.segments.rules import DefinitionError

    settings, store = _store(data_dir)
    try:
        typer.echo(json.dumps(segments_service.estimate(store, settings.lake_dir, _read(file))))
    except DefinitionError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()


@audiences_app.command("history")
def audiences_history(
    name: Annotated[str, typer.Argument(help="Audience name.")],
    limit: Annotated[int, typer.Option(help="Entries to show.")] = 50,
    data_dir: DataDir = None,
) -> None:
    """Entries and exits, newest first, as JSON lines."""
    _, store = _store(data_dir)
    for row in store.audience_history(name, limit):
        typer.echo(json.dumps(row))
    store.close()


@segments_app.command("refresh")
def refresh(
    full: Annotated[bool, typer.Option("--full", help="Recompute every profile.")] = False,
    url: Annotated[
        str | None, typer.Option(help="A running Kirana's URL \\[default: settings].")
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="KIRANA_TOKEN", help="Admin token.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Recompute computed traits and audiences now (incrementally unless --full)."""
    from kirana.config import load_settings
    from kirana.eventlog.protocol import LogLocked
    from kirana.runtime import Platform

    settings = load_settings(data_dir)
    try:
        platform = Platform.open(settings)
    except LogLocked:
        import httpx

        if not token:
            raise fail(
                "Kirana is running; pass an admin token with --token (or KIRANA_TOKEN)"
            ) from None
        base = url or f"http://{settings.host}:{settings.port}"
        response = httpx.post(
            f"{base}/v1/segments/refresh",
            params={"full": full},
            headers={"Authorization": f"Bearer {token}"},
            timeout=3600,
        )
        if response.status_code != 200:
            raise fail(f"{response.status_code}: {response.text}") from None
        typer.echo(json.dumps(response.json(), indent=2))
        return
    try:
        platform.start()
        platform.drain(timeout=600)
        report = platform.refresh_segments(full)
    finally:
        platform.close()
    typer.echo(json.dumps(report.__dict__, indent=2, default=str))
