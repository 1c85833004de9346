"""One call from a transactions table to fitted buying-pattern models and predictions.

With a calibration end date, the models are fitted on the transactions up to it and judged on
the holdout after it: overall, and by calibration frequency (0, 1, ..., 6, 7+), which is the
data behind the conditional-expectations calibration plot of Fader, Hardie & Lee (2005).
Without one, they are fitted on everything and predict from the last date in the data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kirana.models.buying_patterns import bgnbd, gamma_gamma
from kirana.models.buying_patterns.rfm import TIME_UNITS, build_rfm

FREQUENCY_BINS = 7  # calibration bins 0, 1, ..., 6 and "7+"


def _num(value: float) -> float | None:
    """A JSON-ready float: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def fit_buying_patterns(
    transactions: object,
    calibration_end: object | None = None,
    time_unit: str = "days",
    horizon: float = 30,
    *,
    holdout_end: object | None = None,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str | None = "amount",
    penalizer: float = 0.0,
) -> dict:
    """Fit the BG/NBD (orders, P(alive)) and Gamma-Gamma (spend per order) models.

    ``transactions``: a pandas DataFrame or pyarrow Table with one row per order. ``horizon``
    is in ``time_unit``s. ``amount_col=None`` skips the spend model. Raises
    :class:`~kirana.models.buying_patterns.rfm.TransactionsError` for bad input and
    ``ValueError`` when the data cannot support a fit.

    Returns a dict that is JSON-ready except ``"predictions"``, a pandas DataFrame with one row
    per customer (use ``.to_dict("records")`` or write it to a file).
    """
    if not horizon > 0:
        raise ValueError("horizon must be > 0")
    rfm = build_rfm(
        transactions,
        calibration_end,
        time_unit,
        holdout_end,
        customer_col=customer_col,
        date_col=date_col,
        amount_col=amount_col,
    )
    c = rfm.customers
    x, t_x, age = (c[k].to_numpy(float) for k in ("frequency", "recency", "T"))

    # Identical (x, t_x, T) rows share a likelihood term: fit on the distinct rows, weighted.
    rows = c.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    bg = bgnbd.fit_bgnbd(
        rows["frequency"], rows["recency"], rows["T"], weights=rows["n"], penalizer=penalizer
    )
    params = bg.params
    h = float(horizon)
    unit_days = TIME_UNITS[time_unit]
    label = f"{h:g}"
    wait = bgnbd.median_time_to_next_purchase(params, x, age) * unit_days
    next_day = rfm.calibration_end + pd.to_timedelta(np.maximum(1, np.ceil(wait)), unit="D")
    pred = pd.DataFrame(
        {
            "customer_id": c.index.to_numpy(),
            "frequency": c["frequency"].to_numpy(),
            "recency": c["recency"].to_numpy(),
            "T": c["T"].to_numpy(),
            "p_alive": bgnbd.probability_alive(params, x, t_x, age),
            f"expected_orders_next_{label}": bgnbd.conditional_expected_purchases(
                params, h, x, t_x, age
            ),
            f"p_order_next_{label}": bgnbd.probability_purchase_within(params, h, x, t_x, age),
            "expected_next_order_date": next_day.normalize(),
        }
    )

    out: dict = {
        "time_unit": time_unit,
        "horizon": h,
        "calibration_end": rfm.calibration_end.date().isoformat(),
        "holdout_end": None if rfm.holdout_end is None else rfm.holdout_end.date().isoformat(),
        "holdout_periods": rfm.holdout_periods,
        "customers": {
            "in_calibration": len(c),
            "with_repeat_purchases": int((c["frequency"] > 0).sum()),
            "first_purchase_after_calibration_end": rfm.n_first_purchase_after_calibration,
        },
        "bgnbd": {
            "params": params.as_dict(),
            "standard_errors": bg.standard_errors,
            "log_likelihood": bg.log_likelihood,
            "converged": bg.converged,
            "message": bg.message,
            "warning": bg.warning,
            "penalizer": penalizer,
            "mean_purchase_rate_per_period": params.r / params.alpha,
            "mean_dropout_probability": params.a / (params.a + params.b),
            f"expected_repeat_orders_of_a_new_customer_in_{label}": _num(
                bgnbd.expected_purchases(params, h)
            ),
        },
        "gamma_gamma": None,
    }
    if rfm.has_amounts:
        out["gamma_gamma"], pred["expected_spend_per_order"] = _spend(c, penalizer)
        pred["monetary_value"] = c["monetary_value"].to_numpy()

    summary: dict = {
        "mean_p_alive": float(pred["p_alive"].mean()),
        f"mean_expected_orders_next_{label}": float(pred[f"expected_orders_next_{label}"].mean()),
    }
    if rfm.holdout_periods:
        predicted = bgnbd.conditional_expected_purchases(params, rfm.holdout_periods, x, t_x, age)
        pred["predicted_holdout_orders"] = predicted
        pred["holdout_orders"] = c["holdout_frequency"].to_numpy()
        summary["holdout"] = _holdout_summary(pred, c, rfm.has_amounts)
        summary["calibration_by_frequency"] = _by_frequency(pred)
    out["summary"] = summary
    first = ["customer_id", "frequency", "recency", "T", "p_alive", f"expected_orders_next_{label}"]
    first += [k for k in ("expected_spend_per_order",) if k in pred]
    first += ["expected_next_order_date"]
    out["predictions"] = pred[first + [k for k in pred.columns if k not in first]]
    return out


def _spend(c: pd.DataFrame, penalizer: float) -> tuple[dict | None, np.ndarray]:
    """Fit the Gamma-Gamma on repeat buyers with a positive mean spend; predict for everyone."""
    x, m = c["frequency"].to_numpy(float), c["monetary_value"].to_numpy(float)
    use = (x >= 1) & (m > 0)
    if use.sum() < 2:
        return None, np.full(len(c), np.nan)
    gg = gamma_gamma.fit_gamma_gamma(x[use], m[use], penalizer=penalizer)
    info = {
        "params": gg.params.as_dict(),
        "standard_errors": gg.standard_errors,
        "log_likelihood": gg.log_likelihood,
        "n_customers": gg.n_customers,
        "converged": gg.converged,
        "message": gg.message,
        "warning": gg.warning,
        "population_mean_spend_per_order": _num(gg.params.population_mean),
        "mean_observed_spend_per_repeat_order": float(m[use].mean()),
        "frequency_monetary_correlation": gamma_gamma.frequency_monetary_correlation(x, m),
    }
    return info, gamma_gamma.conditional_expected_spend(gg.params, x, m)


def _holdout_summary(pred: pd.DataFrame, c: pd.DataFrame, has_amounts: bool) -> dict:
    predicted, actual = pred["predicted_holdout_orders"], pred["holdout_orders"]
    out = {
        "mean_predicted_orders": float(predicted.mean()),
        "mean_actual_orders": float(actual.mean()),
        "total_predicted_orders": float(predicted.sum()),
        "total_actual_orders": int(actual.sum()),
        "mean_absolute_error": float((predicted - actual).abs().mean()),
        "correlation": _num(np.corrcoef(predicted, actual)[0, 1]) if len(pred) > 1 else None,
    }
    if has_amounts and "expected_spend_per_order" in pred:
        # Spend: predicted mean order value vs the actual holdout mean, for repeat buyers who
        # ordered in the holdout (the only ones with both numbers).
        both = (c["holdout_frequency"].to_numpy() > 0) & pred["expected_spend_per_order"].notna()
        both &= c["frequency"].to_numpy() > 0
        if both.any():
            actual_spend = c["holdout_spend"] / c["holdout_frequency"].where(lambda s: s > 0)
            out["spend_customers"] = int(both.sum())
            out["mean_predicted_spend_per_order"] = float(
                pred.loc[both, "expected_spend_per_order"].mean()
            )
            out["mean_actual_spend_per_order"] = float(actual_spend.to_numpy()[both].mean())
    return out


def _by_frequency(pred: pd.DataFrame) -> list[dict]:
    """Mean predicted vs actual holdout orders for calibration frequency 0..6 and 7+."""
    bins = np.minimum(pred["frequency"].to_numpy(), FREQUENCY_BINS)
    rows = []
    for b in range(FREQUENCY_BINS + 1):
        sel = bins == b
        n = int(sel.sum())
        rows.append(
            {
                "frequency": f"{FREQUENCY_BINS}+" if b == FREQUENCY_BINS else str(b),
                "customers": n,
                "mean_predicted": float(pred.loc[sel, "predicted_holdout_orders"].mean())
                if n
                else None,
                "mean_actual": float(pred.loc[sel, "holdout_orders"].mean()) if n else None,
            }
        )
    return rows
