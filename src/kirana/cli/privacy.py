"""``kirana privacy delete``: erase people and suppress their future events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail

privacy_app = typer.Typer(help="Erase people (right to be forgotten).", no_args_is_help=True)


def _read_file(path: Path) -> list[str]:
    """One identifier per line; blank lines and ``#`` comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise fail(f"--file {path}: {exc.strerror}") from exc
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]


@privacy_app.command("delete")
def delete(
    identifiers: Annotated[
        list[str] | None,
        typer.Argument(help="Identifiers of the people (user id, email…), one per person."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A file of identifiers, one per line (added to the others)."),
    ] = None,
    id_type: Annotated[
        str | None,
        typer.Option("--type", help="user_id, anonymous_id, email, phone or device_id (all)."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="A running Kirana's URL \\[default: from settings].")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="KIRANA_TOKEN", help="Admin token, when Kirana is running.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Erase the people everywhere Kirana writes: profile, log, lake, model outputs and
    serving lists, decisions, exposures, sync snapshots, delivery queues, quarantine. Many
    at once cost one rewrite of each store; an identifier nobody has yet is suppressed."""
    from kirana.config import load_settings
    from kirana.eventlog.protocol import LogLocked
    from kirana.privacy.participants import ErasureIncomplete
    from kirana.privacy.targets import ErasureTarget
    from kirana.profiles.view import ID_TYPES
    from kirana.runtime import Platform

    if id_type is not None and id_type not in ID_TYPES:
        raise fail(f"--type must be one of {', '.join(ID_TYPES)}")
    values = list(identifiers or []) + (_read_file(file) if file else [])
    if not values:
        raise fail("name at least one identifier (arguments or --file)")
    settings = load_settings(data_dir)
    try:
        platform = Platform.open(settings)
    except LogLocked:
        _via_api(url or f"http://{settings.host}:{settings.port}", token, values, id_type)
        return
    try:
        platform.start()
        try:
            report = platform.erase_many([ErasureTarget(v, id_type) for v in values])
        except ErasureIncomplete as exc:
            raise fail(str(exc)) from exc
    finally:
        platform.close()
    typer.echo(json.dumps(report.__dict__, indent=2, default=_plain))


def _plain(value: object) -> object:
    return getattr(value, "__dict__", str(value))


def _via_api(url: str, token: str | None, values: list[str], id_type: str | None) -> None:
    import httpx

    if not token:
        raise fail(
            "Kirana is running and owns the data dir; pass an admin token with --token "
            "(or KIRANA_TOKEN), e.g. from `kirana tokens create ops --role admin`"
        )
    headers = {"Authorization": f"Bearer {token}"}
    if len(values) == 1:
        path, body = "erasures", {"identifier": values[0], "type": id_type}
    else:
        path = "erasures/batch"
        body = {"people": [{"identifier": v, "type": id_type} for v in values]}
    response = httpx.post(f"{url}/v1/privacy/{path}", json=body, headers=headers, timeout=600)
    if response.status_code != 200:
        raise fail(f"{response.status_code}: {response.json().get('message', response.text)}")
    typer.echo(json.dumps(response.json(), indent=2))
