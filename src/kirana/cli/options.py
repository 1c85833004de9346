"""Options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="KIRANA_DATA_DIR",
        help="Where Kirana keeps its log, lake and state \\[default: ./kirana-data].",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error that says what to do next, and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)
