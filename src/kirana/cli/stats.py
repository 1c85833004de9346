"""``kirana stats``: analyse an experiment from per-variation sufficient statistics (JSON)."""

from __future__ import annotations

from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail


def stats(
    input: Annotated[
        str,
        typer.Argument(
            help="Request JSON file, or - for standard input.",
        ),
    ] = "-",
    pretty: Annotated[bool, typer.Option("--pretty/--compact", help="Indent the JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Analyse an experiment from per-variation sums (JSON) and print the result as JSON.

    Example: kirana stats request.json --pretty (or pipe the request on standard input).
    Request format and formulas: docs/stats.md.
    """
    import json
    import sys
    from pathlib import Path

    from kirana.experiments.stats import StatsInputError, analyze

    del data_dir  # accepted like every command; the engine is pure and reads no data
    if input == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(input).read_text(encoding="utf-8")
        except OSError as exc:
            raise fail(f"input: cannot read {input} ({exc.strerror or exc})") from exc
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"input: not valid JSON ({exc})") from exc
    try:
        result = analyze(request)
    except StatsInputError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(result, indent=2 if pretty else None, allow_nan=False))
