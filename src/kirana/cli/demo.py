"""``kirana demo``: fill a Kirana with demo data through the tracking API."""

from __future__ import annotations

from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail


def demo(
    url: Annotated[
        str | None,
        typer.Option(
            help="A running Kirana's URL; without it an embedded one is started for the load."
        ),
    ] = None,
    write_key: Annotated[
        str | None,
        typer.Option(envvar="KIRANA_WRITE_KEY", help="Write key to send with (with --url)."),
    ] = None,
    users: Annotated[
        int | None,
        typer.Option(help="Users to simulate; above 593 they are drawn from the real ones."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same events.")
    ] = 0,
    data_dir: DataDir = None,
) -> None:
    """Simulate shoppers from the Instacart sample and send their events through /v1/batch."""
    from kirana.demo.loader import send_demo, with_embedded_server

    if url is not None:
        if not write_key:
            raise fail(
                "--url needs --write-key (or KIRANA_WRITE_KEY); "
                "create one with `kirana sources create demo`"
            )
        stats = send_demo(url, write_key, users=users, seed=seed)
    else:
        stats = with_embedded_server(data_dir, users=users, seed=seed)
    typer.echo(
        f"sent {stats.sent:,} events ({stats.rejected:,} rejected) in {stats.seconds:.1f}s "
        f"= {stats.sent / max(stats.seconds, 1e-9):,.0f} events/s"
    )
