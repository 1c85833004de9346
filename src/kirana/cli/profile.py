"""``kirana profile ID``: the single view of one customer."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail


def profile(
    identifier: Annotated[
        str, typer.Argument(help="Any identifier: user id, anonymous id, email…")
    ],
    id_type: Annotated[
        str | None, typer.Option("--type", help="user_id, anonymous_id, email, phone or device_id.")
    ] = None,
    events: Annotated[int, typer.Option(help="How many latest events to show.")] = 10,
    data_dir: DataDir = None,
) -> None:
    """Print a profile as JSON: identities, traits, audiences and latest events."""
    from kirana.config import load_settings
    from kirana.profiles.view import ID_TYPES, find_profile
    from kirana.runtime import open_profile_store

    if id_type is not None and id_type not in ID_TYPES:
        raise fail(f"--type must be one of {', '.join(ID_TYPES)}")
    settings = load_settings(data_dir)
    store = open_profile_store(settings)
    try:
        view = find_profile(store, settings.lake_dir, identifier, id_type, events)
    finally:
        store.close()
    if view is None:
        raise fail(
            f"no profile has the identifier {identifier!r}; is `kirana serve` consuming events?"
        )
    typer.echo(json.dumps(view.as_dict(), indent=2, default=str))
