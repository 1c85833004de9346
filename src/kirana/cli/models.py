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


@models_app.command("evaluate")
def evaluate(
    orders: Annotated[
        Path | None,
        typer.Option(
            "--orders",
            help="CSV or Parquet orders file (user, order, item and time or order number); "
            "without it: the lake's Order Completed events.",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    user_col: Annotated[str, typer.Option(help="User column in --orders.")] = "user_id",
    order_col: Annotated[str, typer.Option(help="Order column in --orders.")] = "order_id",
    item_col: Annotated[str, typer.Option(help="Item column in --orders.")] = "product_id",
    sequence_col: Annotated[
        str, typer.Option(help="Order number or time column in --orders.")
    ] = "order_number",
    data_dir: DataDir = None,
) -> None:
    """Hold out each user's last order; report Recall/NDCG/hit rate@10/20 for every model."""
    if format not in ("table", "json"):
        raise fail("--format must be table or json")
    from kirana.models.evaluation import default_models, format_table, json_safe, metric_columns
    from kirana.models.evaluation import evaluate as run
    from kirana.models.recommenders.data import Baskets

    try:
        if orders is not None:
            if not orders.exists():
                raise fail(f"{orders}: no such file")
            baskets = Baskets.read(
                orders,
                user_col=user_col,
                order_col=order_col,
                item_col=item_col,
                sequence_col=sequence_col,
            )
        else:
            from kirana.config import load_settings
            from kirana.models.lake_input import orders_from_lake

            table = orders_from_lake(load_settings(data_dir).lake_dir)
            baskets = Baskets.from_frame(table, sequence_col="order_time")
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    with _progress("fitting and scoring models"):
        results = run(default_models(), baskets)
    if format == "json":
        typer.echo(json.dumps(json_safe(results), indent=2, default=float, allow_nan=False))
        return
    typer.echo(format_table(results, metric_columns(results)))


def _progress(message: str):
    from rich.console import Console

    return Console(stderr=True).status(message)
