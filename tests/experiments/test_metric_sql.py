"""The metric SQL against a plain-Python oracle on generated events: windows after first
exposure, pre-exposure values, property fallbacks, filters, absolute and percentile caps,
ratio denominators, units seen in two variations, the returning-user flag, and visitors
exposed anonymously who sign in (before or after exposure, on a shared device too)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.experiments.metric_sql import query_sufficient_stats
from kirana.experiments.metrics import parse_metric

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=6)
LOOKBACK = 7.0

METRICS = [
    parse_metric(
        {"key": "buy", "type": "binomial", "event": "Order Completed", "window_hours": 24}
    ),
    parse_metric({"key": "n", "type": "count", "event": "Order Completed", "window_hours": 48}),
    parse_metric(
        {
            "key": "rev",
            "type": "sum",
            "event": "Order Completed",
            "value": ["revenue", "total"],
            "cap": {"type": "absolute", "value": 40},
        }
    ),
    parse_metric(
        {
            "key": "rev_p",
            "type": "sum",
            "event": "Order Completed",
            "value": "revenue",
            "cap": {"type": "percentile", "value": 0.8},
        }
    ),
    parse_metric(
        {
            "key": "web_views",
            "type": "count",
            "event": "Product Viewed",
            "filter": {"channel": "web"},
        }
    ),
    parse_metric(
        {
            "key": "aov",
            "type": "ratio",
            "event": "Order Completed",
            "value": "revenue",
            "denominator_event": "Order Completed",
        }
    ),
]


def _events_table(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(
        "CREATE TABLE events (event VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, "
        "timestamp TIMESTAMPTZ, properties VARCHAR, context VARCHAR)"
    )
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
    return conn


def _generate(seed: int, n_users: int) -> tuple[list[tuple], dict]:
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for u in range(n_users):
        unit = f"u{u}"
        first = START + timedelta(hours=float(rng.uniform(0, 120)))
        variation = "a" if rng.random() < 0.5 else "b"
        exposed_as: tuple[str | None, str | None] = (unit, None)
        if rng.random() < 0.3:  # exposed before signing in: only the anonymous id is known
            device = f"device-{u}"
            exposed_as = (None, device)
            # signs in before, after, or (then only the device is the unit) after the end
            signed_in = first + timedelta(hours=float(rng.uniform(-48, 24 * 7)))
            rows.append(("Signed In", unit, device, signed_in, "{}", "{}"))
            if rng.random() < 0.2:  # a shared device: the first user seen with it counts
                other = f"u{(u + 1) % n_users}"
                later = signed_in + timedelta(hours=float(rng.uniform(-72, 72)))
                rows.append(("Signed In", other, device, later, "{}", "{}"))
            # signed out before and after exposure: browsing, and now and then an order
            for _ in range(int(rng.poisson(1.5))):
                at = first + timedelta(hours=float(rng.uniform(-24 * 9, 24 * 4)))
                if rng.random() < 0.7:
                    channel = "web" if rng.random() < 0.5 else "app"
                    props = {"channel": channel}
                    rows.append(("Product Viewed", None, device, at, json.dumps(props), "{}"))
                else:
                    props = {"revenue": round(float(rng.exponential(25)), 2)}
                    rows.append(("Order Completed", None, device, at, json.dumps(props), "{}"))
        rows.append(
            (
                "Experiment Viewed",
                *exposed_as,
                first,
                json.dumps({"experiment_id": "x", "variation_id": variation}),
                json.dumps({"device": {"type": "ios" if u % 2 else "android"}}),
            )
        )
        if rng.random() < 0.1:  # seen again later in the other arm: excluded from analysis
            rows.append(
                (
                    "Experiment Viewed",
                    unit,
                    None,
                    first + timedelta(hours=1),
                    json.dumps(
                        {"experiment_id": "x", "variation_id": "b" if variation == "a" else "a"}
                    ),
                    "{}",
                )
            )
        if rng.random() < 0.05:  # another experiment's exposure never counts
            rows.append(
                (
                    "Experiment Viewed",
                    unit,
                    None,
                    first,
                    json.dumps({"experiment_id": "other", "variation_id": "a"}),
                    "{}",
                )
            )
        for _ in range(int(rng.poisson(2.0))):
            at = first + timedelta(hours=float(rng.uniform(-24 * 9, 24 * 4)))
            props: dict = {}
            if rng.random() < 0.7:
                props["revenue"] = round(float(rng.exponential(25)), 2)
            elif rng.random() < 0.5:
                props["total"] = round(float(rng.exponential(25)), 2)
            rows.append(("Order Completed", unit, None, at, json.dumps(props), "{}"))
        for _ in range(int(rng.poisson(1.0))):
            at = first + timedelta(hours=float(rng.uniform(-24, 24 * 4)))
            channel = "web" if rng.random() < 0.5 else "app"
            rows.append(
                (
                    "Product Viewed",
                    None,  # identified only by anonymousId: coalesce(user_id, anonymous_id)
                    unit,
                    at,
                    json.dumps({"channel": channel}),
                    "{}",
                )
            )
    truth["rows"] = rows
    return rows, truth


def rev(p: dict, paths: tuple[str, ...] = ("revenue", "total")) -> float:
    """The first present property, as the metric's ``value`` list reads it."""
    for path in paths:
        if path in p:
            return float(p[path])
    return 0.0


def _oracle(rows: list[tuple]) -> dict:
    """Per (variation, returning) sums computed the obvious way, one user at a time."""
    signed_in: dict[str, tuple] = {}  # anonymous id -> (first time, user id) seen together
    for _, uid, aid, ts, _, _ in rows:
        if uid and aid and ts < END:
            signed_in[aid] = min(signed_in.get(aid, (ts, uid)), (ts, uid))

    def unit_of(uid: str | None, aid: str | None) -> str | None:
        return uid or (signed_in[aid][1] if aid in signed_in else aid)

    exposures: dict[str, list] = {}
    for event, uid, aid, ts, props, _ in rows:
        p = json.loads(props)
        if event == "Experiment Viewed" and p["experiment_id"] == "x" and START <= ts < END:
            exposures.setdefault(unit_of(uid, aid), []).append((ts, p["variation_id"]))
    units = {
        u: (min(v)[0], min(v)[1]) for u, v in exposures.items() if len({var for _, var in v}) == 1
    }
    per_unit: dict[str, dict] = {}
    for unit, (first, variation) in units.items():
        mine = [
            (e, ts, json.loads(props))
            for e, uid, aid, ts, props, _ in rows
            if unit_of(uid, aid) == unit and e != "Experiment Viewed" and ts < END
        ]

        def window(hours: float, pre: bool = False, mine=mine, first=first) -> list:
            lo = first - timedelta(days=LOOKBACK) if pre else first
            hi = first if pre else first + timedelta(hours=hours)
            return [(e, p) for e, ts, p in mine if lo <= ts < hi]

        vals = {}
        for pre in (False, True):
            tag = "p" if pre else "m"
            orders24 = [p for e, p in window(24, pre) if e == "Order Completed"]
            orders48 = [p for e, p in window(48, pre) if e == "Order Completed"]
            orders72 = [p for e, p in window(72, pre) if e == "Order Completed"]
            vals[f"{tag}0"] = 1.0 if orders24 else 0.0
            vals[f"{tag}1"] = float(len(orders48))
            vals[f"{tag}2"] = min(sum(rev(p) for p in orders72), 40.0)
            vals[f"{tag}3"] = sum(rev(p, ("revenue",)) for p in orders72)
            vals[f"{tag}4"] = float(
                sum(
                    1 for e, p in window(72, pre) if e == "Product Viewed" and p["channel"] == "web"
                )
            )
        orders72 = [p for e, p in window(72) if e == "Order Completed"]
        vals["m5"] = sum(rev(p, ("revenue",)) for p in orders72)
        vals["d5"] = float(len(orders72))
        history = [ts for _, ts, _ in mine if first - timedelta(days=30) <= ts < first]
        per_unit[unit] = {"variation": variation, "returning": bool(history), **vals}
    nonzero = [v["m3"] for v in per_unit.values() if v["m3"] > 0]
    cap = float(np.quantile(nonzero, 0.8)) if nonzero else 0.0
    for v in per_unit.values():
        if cap > 0:
            v["m3"], v["p3"] = min(v["m3"], cap), min(v["p3"], cap)
    return {"per_unit": per_unit, "multiple": len(exposures) - len(units)}


def _sql_totals(result) -> dict:
    cols = result.columns
    out: dict = {}
    for i in range(len(cols["n"])):
        key = (cols["variation"][i], bool(cols["is_returning"][i]))
        acc = out.setdefault(key, {})
        for name, values in cols.items():
            if name not in ("variation", "day", "platform", "is_returning"):
                acc[name] = acc.get(name, 0.0) + float(values[i])
    return out


def _oracle_totals(per_unit: dict) -> dict:
    out: dict = {}
    for v in per_unit.values():
        acc = out.setdefault((v["variation"], v["returning"]), {})
        acc["n"] = acc.get("n", 0.0) + 1
        for i in range(5):
            y, x = v[f"m{i}"], v[f"p{i}"]
            for name, value in (
                (f"m{i}_sum", y),
                (f"m{i}_ss", y * y),
                (f"p{i}_sum", x),
                (f"p{i}_ss", x * x),
                (f"m{i}_x", y * x),
            ):
                acc[name] = acc.get(name, 0.0) + value
        y, d = v["m5"], v["d5"]
        for name, value in (
            ("m5_sum", y),
            ("m5_ss", y * y),
            ("d5_sum", d),
            ("d5_ss", d * d),
            ("m5_xd", y * d),
        ):
            acc[name] = acc.get(name, 0.0) + value
    return out


def _check(seed: int, n_users: int) -> None:
    rows, _ = _generate(seed, n_users)
    # every metric except the first uses a 72 h window unless told otherwise
    metrics = [METRICS[0], METRICS[1], *METRICS[2:]]
    result = query_sufficient_stats(
        _events_table(rows), "x", metrics, start=START, end=END, lookback_days=LOOKBACK
    )
    oracle = _oracle(rows)
    assert result.multiple_variations == oracle["multiple"]
    got, want = _sql_totals(result), _oracle_totals(oracle["per_unit"])
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].keys() == want[key].keys()
        for name in want[key]:
            assert np.isclose(got[key][name], want[key][name], rtol=1e-9, atol=1e-6), (key, name)


def test_sufficient_statistics_match_a_per_user_oracle() -> None:
    _check(seed=11, n_users=400)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(2, 40))
def test_sufficient_statistics_match_the_oracle_on_random_small_sets(seed: int, n: int) -> None:
    _check(seed, n)
