"""From a transactions table to the per-customer summaries the BG/NBD and Gamma-Gamma need.

Per customer, at a calibration end date (inclusive), in periods of one day or one week:

- ``frequency`` x: repeat purchases, i.e. distinct periods with a purchase, minus the first;
- ``recency`` t_x: periods from the first purchase to the last;
- ``T``: periods from the first purchase to the calibration end (the customer's age);
- ``monetary_value`` m_x: mean spend of the x repeat purchases (NaN when x = 0). The first
  purchase is left out, as in Fader, Hardie & Lee (2005, "RFM and CLV"): it is often atypical
  (a sign-up offer, a first big basket) and the models describe repeat behaviour;
- ``holdout_frequency`` / ``holdout_spend``: distinct purchase periods, and their spend, in the
  holdout (calibration end, calibration end + holdout_periods periods].

Several transactions in the same period count as ONE purchase whose value is their sum: the
BG/NBD is a model of purchase occasions in continuous time, and two orders on the same day
(a forgotten item, a split basket) are one occasion, not two. Periods are counted back from
the calibration end: with weeks, the last calibration week is the 7 days ending on it, and the
holdout keeps whole weeks only (a trailing partial week is dropped, so actuals and
predictions cover the same time). Times of day are ignored; tz-aware timestamps are taken at
their local date. Customers whose first purchase is after the calibration end are not in the
calibration cohort and are left out (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TIME_UNITS: dict[str, int] = {"days": 1, "weeks": 7}


class TransactionsError(ValueError):
    """The transactions table breaks a rule; the message names the column and the rule."""


@dataclass(frozen=True)
class RFM:
    """Per-customer summaries (indexed by customer id) and the periods they refer to."""

    customers: pd.DataFrame
    calibration_end: pd.Timestamp
    holdout_end: pd.Timestamp | None  # last day of the whole holdout periods; None if none
    holdout_periods: int  # 0 when there is no holdout
    time_unit: str
    n_first_purchase_after_calibration: int
    has_amounts: bool


def _to_pandas(transactions: object) -> pd.DataFrame:
    if isinstance(transactions, pd.DataFrame):
        return transactions
    if hasattr(transactions, "to_pandas") and hasattr(transactions, "column_names"):
        return transactions.to_pandas()  # a pyarrow Table (or RecordBatch)
    raise TypeError("transactions must be a pandas DataFrame or a pyarrow Table")


def _parse_dates(values: pd.Series, column: str) -> pd.Series:
    rule = "dates must be ISO 8601 (e.g. 2024-03-31 or 2024-03-31T18:05:00) or a date type"
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise TransactionsError(f"column {column!r} holds numbers, not dates: {rule}")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        try:
            parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
        except (ValueError, TypeError) as exc:  # e.g. mixed UTC offsets
            msg = f"column {column!r} has unparseable dates ({exc}): {rule}"
            raise TransactionsError(msg) from exc
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna() & values.notna()
    if values.isna().any() or bad.any():
        example = values[bad].iloc[0] if bad.any() else None
        raise TransactionsError(
            f"column {column!r} has {int(bad.sum() + values.isna().sum())} missing or "
            f"unparseable dates (e.g. {example!r}): {rule}"
        )
    return parsed.dt.normalize()


def prepare_transactions(
    transactions: object,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str | None = "amount",
) -> pd.DataFrame:
    """Validate and normalise to columns customer_id, day (datetime64, midnight), amount."""
    df = _to_pandas(transactions)
    wanted = [c for c in (customer_col, date_col, amount_col) if c is not None]
    for col in wanted:
        if col not in df.columns:
            found = ", ".join(map(str, df.columns)) or "none"
            raise TransactionsError(
                f"column {col!r} is missing: transactions need a customer, a date and an "
                f"amount column (found: {found})"
            )
    if len(df) == 0:
        raise TransactionsError("the transactions table is empty")
    customers = df[customer_col]
    if customers.isna().any():
        raise TransactionsError(
            f"column {customer_col!r} has {int(customers.isna().sum())} missing values: "
            "every transaction needs a customer id"
        )
    out = pd.DataFrame(
        {"customer_id": customers.to_numpy(), "day": _parse_dates(df[date_col], date_col)}
    )
    if amount_col is not None:
        raw = df[amount_col]
        amount = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = amount.isna() | ~np.isfinite(amount)
        if bad.any():
            raise TransactionsError(
                f"column {amount_col!r} has {int(bad.sum())} missing or non-numeric values "
                f"(e.g. {raw[bad].iloc[0]!r}): amounts must be finite numbers"
            )
        negative = amount < 0
        if negative.any():
            raise TransactionsError(
                f"column {amount_col!r} has {int(negative.sum())} negative values (e.g. "
                f"{amount[negative].iloc[0]}): amounts must be >= 0 (leave refunds out)"
            )
        out["amount"] = amount.to_numpy()
    return out


def build_rfm(
    transactions: object,
    calibration_end: object | None = None,
    time_unit: str = "days",
    holdout_end: object | None = None,
    *,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str | None = "amount",
) -> RFM:
    """Summarise transactions per customer at ``calibration_end`` (default: the last date).

    With a ``calibration_end``, the holdout runs to ``holdout_end`` (default: the last date in
    the data); the end must lie strictly inside the data's date range.
    """
    if time_unit not in TIME_UNITS:
        raise TransactionsError(f"time unit must be one of {', '.join(TIME_UNITS)}")
    unit = TIME_UNITS[time_unit]
    tx = prepare_transactions(transactions, customer_col, date_col, amount_col)
    first, last = tx["day"].min(), tx["day"].max()
    if calibration_end is None:
        cal_end, hold_end, periods = last, None, 0
    else:
        cal_end = _one_date(calibration_end, "calibration end")
        if not first < cal_end < last:
            raise TransactionsError(
                f"calibration end {cal_end.date()} is outside the data's range: it must be "
                f"after the first transaction date ({first.date()}) and before the last "
                f"({last.date()}), so that both periods have data"
            )
        hold_end = last if holdout_end is None else _one_date(holdout_end, "holdout end")
        periods = (hold_end - cal_end).days // unit
        if periods < 1:
            raise TransactionsError(
                f"the holdout ({cal_end.date()}, {hold_end.date()}] is shorter than one "
                f"{time_unit[:-1]}: move the calibration end earlier"
            )
        hold_end = cal_end + pd.Timedelta(days=periods * unit)

    days = (tx["day"] - cal_end).dt.days.to_numpy()
    tx = tx.assign(period=-((-days) // unit))  # ceil(days / unit): 0 is the last cal. period
    if "amount" not in tx:
        tx["amount"] = 0.0
    per = tx.groupby(["customer_id", "period"], sort=False)["amount"].sum().reset_index()

    cal = per[per["period"] <= 0]
    g = cal.groupby("customer_id", sort=True)
    summary = g["period"].agg(first="min", last="max", n="size")
    first_spend = cal.loc[g["period"].idxmin(), ["customer_id", "amount"]].set_index("customer_id")
    total = g["amount"].sum()
    x = summary["n"] - 1
    customers = pd.DataFrame(
        {
            "frequency": x.astype("int64"),
            "recency": (summary["last"] - summary["first"]).astype("int64"),
            "T": (-summary["first"]).astype("int64"),
            "monetary_value": ((total - first_spend["amount"]) / x.where(x > 0)).astype(float),
        }
    )
    hold = per[(per["period"] >= 1) & (per["period"] <= periods)]
    hold = hold[hold["customer_id"].isin(customers.index)].groupby("customer_id")["amount"]
    customers["holdout_frequency"] = hold.size().reindex(customers.index, fill_value=0)
    customers["holdout_spend"] = hold.sum().reindex(customers.index, fill_value=0.0)
    if amount_col is None:
        customers = customers.drop(columns=["monetary_value", "holdout_spend"])
    customers.index.name = "customer_id"
    return RFM(
        customers=customers,
        calibration_end=cal_end,
        holdout_end=hold_end,
        holdout_periods=int(periods),
        time_unit=time_unit,
        n_first_purchase_after_calibration=int(tx["customer_id"].nunique() - len(customers)),
        has_amounts=amount_col is not None,
    )


def _one_date(value: object, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise TransactionsError(f"{what} {value!r} is not a date (use YYYY-MM-DD)") from exc
    if pd.isna(ts):
        raise TransactionsError(f"{what} {value!r} is not a date (use YYYY-MM-DD)")
    return (ts.tz_localize(None) if ts.tzinfo is not None else ts).normalize()
