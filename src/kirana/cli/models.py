"""``kirana models``: fit customer models on a data scientist's own files."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail

models_app = typer.Typer(
    help="Customer models fitted on your own data: buying patterns (orders, churn, spend).",
    no_args_is_help=True,
)


class TimeUnit(StrEnum):
    days = "days"
    weeks = "weeks"


_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def _read_table(path: Path, customer_col: str):
    """A CSV or Parquet file as a pandas DataFrame (customer ids kept as text in CSVs)."""
    import pandas as pd
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise fail(f"--transactions must be a .csv or .parquet file, got {path.name!r}")
    if not path.is_file():
        raise fail(f"--transactions: no such file {str(path)!r}")
    try:
        if suffix == ".csv":
            # Text ids: "007" stays "007" instead of becoming the number 7.
            return pd.read_csv(path, dtype={customer_col: "string"})
        return pq.read_table(path).to_pandas()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise fail(f"cannot read {str(path)!r}: {exc}") from exc


def _write_predictions(predictions, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        predictions.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        predictions.to_parquet(path, index=False)


@models_app.command("fit-buying-patterns")
def fit_buying_patterns(
    transactions: Annotated[
        Path,
        typer.Option(
            "--transactions",
            help="CSV or Parquet file, one row per order: customer, date, amount.",
            show_default=False,
        ),
    ],
    calibration_end: Annotated[
        str | None,
        typer.Option(
            help="Fit on orders up to this date (YYYY-MM-DD, inclusive) and check the "
            "predictions on the orders after it. Default: fit on everything.",
            show_default=False,
        ),
    ] = None,
    time_unit: Annotated[
        TimeUnit, typer.Option(help="Period: orders on the same day (or week) count once.")
    ] = TimeUnit.days,
    horizon: Annotated[
        float, typer.Option(min=0.001, help="Predict orders over this many time units.")
    ] = 30,
    customer_col: Annotated[str, typer.Option(help="Customer id column.")] = "customer_id",
    date_col: Annotated[str, typer.Option(help="Order date column.")] = "date",
    amount_col: Annotated[str, typer.Option(help="Order value column (>= 0).")] = "amount",
    penalizer: Annotated[
        float, typer.Option(min=0.0, help="L2 penalty on the log shape parameters, e.g. 0.001.")
    ] = 0.0,
    predictions_out: Annotated[
        Path | None,
        typer.Option(
            help="Write one row per customer (P(alive), expected orders and spend, next "
            "order date) to this .parquet or .csv file.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Fit BG/NBD + Gamma-Gamma buying-pattern models and print parameters and fit as JSON."""
    from kirana.models.buying_patterns import TransactionsError
    from kirana.models.buying_patterns import fit_buying_patterns as fit

    if predictions_out is not None and predictions_out.suffix.lower() not in _TABLE_SUFFIXES:
        raise fail(f"--predictions-out must end in .parquet or .csv, got {predictions_out.name!r}")
    table = _read_table(transactions, customer_col)
    try:
        result = fit(
            table,
            calibration_end=calibration_end,
            time_unit=time_unit.value,
            horizon=horizon,
            customer_col=customer_col,
            date_col=date_col,
            amount_col=amount_col,
            penalizer=penalizer,
        )
    except TransactionsError as exc:
        raise fail(f"{transactions.name}: {exc}") from exc
    except ValueError as exc:
        raise fail(f"cannot fit the models on {transactions.name}: {exc}") from exc
    predictions = result.pop("predictions")
    if predictions_out is not None:
        try:
            _write_predictions(predictions, predictions_out)
        except OSError as exc:
            raise fail(f"cannot write --predictions-out {str(predictions_out)!r}: {exc}") from exc
        result["predictions_out"] = str(predictions_out)
    typer.echo(json.dumps(result, indent=2))
