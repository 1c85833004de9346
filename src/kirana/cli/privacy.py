"""``kirana privacy delete``: erase a person and suppress their future events."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail

privacy_app = typer.Typer(help="Erase people (right to be forgotten).", no_args_is_help=True)


@privacy_app.command("delete")
def delete(
    identifier: Annotated[
        str, typer.Argument(help="Any identifier of the person (user id, email…).")
    ],
    id_type: Annotated[
        str | None, typer.Option("--type", help="user_id, anonymous_id, email, phone or device_id.")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="A running Kirana's URL [default: from settings].")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="KIRANA_TOKEN", help="Admin token, when Kirana is running.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Erase the person everywhere Kirana writes: profile, log, lake, model outputs and
    serving lists, decisions, exposures, sync snapshots, delivery queues, quarantine."""
    from kirana.config import load_settings
    from kirana.eventlog.protocol import LogLocked
    from kirana.privacy.participants import ErasureIncomplete
    from kirana.profiles.view import ID_TYPES
    from kirana.runtime import Platform

    if id_type is not None and id_type not in ID_TYPES:
        raise fail(f"--type must be one of {', '.join(ID_TYPES)}")
    settings = load_settings(data_dir)
    try:
        platform = Platform.open(settings)
    except LogLocked:
        _via_api(url or f"http://{settings.host}:{settings.port}", token, identifier, id_type)
        return
    try:
        platform.start()
        for candidate in [id_type] if id_type else list(ID_TYPES):
            value = identifier.lower() if candidate == "email" else identifier
            try:
                report = platform.erase((candidate, value))
            except ErasureIncomplete as exc:
                raise fail(str(exc)) from exc
            if report is not None:
                typer.echo(json.dumps(report.__dict__, indent=2, default=str))
                return
    finally:
        platform.close()
    raise fail(f"no profile has the identifier {identifier!r}")


def _via_api(url: str, token: str | None, identifier: str, id_type: str | None) -> None:
    import httpx

    if not token:
        raise fail(
            "Kirana is running and owns the data dir; pass an admin token with --token "
            "(or KIRANA_TOKEN), e.g. from `kirana tokens create ops --role admin`"
        )
    response = httpx.post(
        f"{url}/v1/privacy/erasures",
        json={"identifier": identifier, "type": id_type},
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )
    if response.status_code != 200:
        raise fail(f"{response.status_code}: {response.json().get('message', response.text)}")
    typer.echo(json.dumps(response.json(), indent=2))
