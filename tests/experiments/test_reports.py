"""Reports from sufficient statistics: the overall numbers equal the stats engine run on sums
computed directly from per-user values; the cumulative series ends at the overall result;
Bayesian reports carry chance to beat control; SRM and thin data are reported, not crashed on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from kirana.experiments.metric_sql import SufficientRows
from kirana.experiments.metrics import parse_metric
from kirana.experiments.plan import parse_record
from kirana.experiments.reports import build_report, render_table
from kirana.experiments.stats import analyze

START = datetime(2026, 2, 1, tzinfo=UTC)
METRICS = [
    parse_metric({"key": "buy", "type": "binomial", "event": "Order Completed"}),
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


def _population(seed: int, n: int, weights=(0.5, 0.5)):
    """Per-user values and their group keys (variation, day, platform, returning)."""
    rng = np.random.default_rng(seed)
    variation = np.where(rng.random(n) < weights[0], "control", "treatment")
    day = rng.integers(0, 5, n)
    platform = np.where(rng.random(n) < 0.5, "ios", "android")
    returning = rng.random(n) < 0.4
    pre = (rng.random(n) < np.where(returning, 0.5, 0.1)).astype(float)
    rate = 0.2 + 0.3 * pre + np.where(variation == "treatment", 0.05, 0.0)
    buy = (rng.random(n) < rate).astype(float)
    orders = buy * rng.integers(1, 3, n)
    revenue = orders * rng.gamma(4, 8, n)
    return variation, day, platform, returning, {"m0": buy, "p0": pre, "m1": revenue, "d1": orders}


def _rows(variation, day, platform, returning, v) -> SufficientRows:
    keys = sorted(set(zip(variation, day, platform, returning, strict=True)))
    cols: dict[str, list] = {k: [] for k in ("variation", "day", "platform", "is_returning", "n")}
    sums = {
        "m0_sum": v["m0"],
        "m0_ss": v["m0"] ** 2,
        "p0_sum": v["p0"],
        "p0_ss": v["p0"] ** 2,
        "m0_x": v["m0"] * v["p0"],
        "m1_sum": v["m1"],
        "m1_ss": v["m1"] ** 2,
        "d1_sum": v["d1"],
        "d1_ss": v["d1"] ** 2,
        "m1_xd": v["m1"] * v["d1"],
    }
    for name in sums:
        cols[name] = []
    for key in keys:
        mask = (
            (variation == key[0]) & (day == key[1]) & (platform == key[2]) & (returning == key[3])
        )
        cols["variation"].append(key[0])
        cols["day"].append(START.date() + timedelta(days=int(key[1])))
        cols["platform"].append(key[2])
        cols["is_returning"].append(bool(key[3]))
        cols["n"].append(int(mask.sum()))
        for name, values in sums.items():
            cols[name].append(float(values[mask].sum()))
    return SufficientRows(cols, multiple_variations=3)


def _record(analysis: dict | None = None, weights=None):
    body = {
        "key": "x",
        "variations": [{"key": "control"}, {"key": "treatment"}],
        "metrics": ["buy", "aov"],
        "analysis": analysis or {},
    }
    if weights:
        body["weights"] = list(weights)
    return parse_record(body)


def _direct(variation, v, arms=("control", "treatment")) -> list[dict]:
    """analyze() metric entries from per-user arrays, without going through groups."""
    buy, aov = [], []
    for arm in arms:
        m = variation == arm
        y, x, num, den = v["m0"][m], v["p0"][m], v["m1"][m], v["d1"][m]
        buy.append(
            {
                "name": arm,
                "n": int(m.sum()),
                "sum": y.sum(),
                "sum_squares": (y * y).sum(),
                "pre_sum": x.sum(),
                "pre_sum_squares": (x * x).sum(),
                "cross_sum": (x * y).sum(),
            }
        )
        aov.append(
            {
                "name": arm,
                "n": int(m.sum()),
                "numerator_sum": num.sum(),
                "numerator_sum_squares": (num * num).sum(),
                "denominator_sum": den.sum(),
                "denominator_sum_squares": (den * den).sum(),
                "cross_sum": (num * den).sum(),
            }
        )
    return [
        {"name": "buy", "metric_type": "binomial_cuped", "variations": buy},
        {"name": "aov", "metric_type": "ratio", "variations": aov},
    ]


def test_overall_results_equal_the_engine_on_directly_computed_sums() -> None:
    variation, day, platform, returning, v = _population(1, 6000)
    report = build_report(
        _record(),
        METRICS,
        _rows(variation, day, platform, returning, v),
        start=START,
        end=START + timedelta(days=5),
        analysed_at=START + timedelta(days=5),
    )
    direct = analyze(
        {"correction": "holm", "weights": [0.5, 0.5], "metrics": _direct(variation, v)}
    )
    for mine, expected in zip(report["metrics"], direct["metrics"], strict=True):
        for a, b in zip(mine["result"]["variations"], expected["variations"], strict=True):
            assert a["n"] == b["n"]
            for key in ("p_value", "p_value_adjusted"):
                if key in b:
                    assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12)
            if "relative" in b:
                assert a["relative"]["ci"] == pytest.approx(b["relative"]["ci"], rel=1e-9)
    assert report["metrics"][0]["cuped"] and not report["metrics"][1]["cuped"]
    assert report["excluded"]["multiple_variations"] == 3
    last = report["cumulative"]["buy"][-1]
    assert last["date"] == (START.date() + timedelta(days=4)).isoformat()
    # the cumulative series is uncorrected; its last point equals the uncorrected overall test
    single = analyze({"weights": [0.5, 0.5], **_direct(variation, v)[0]})
    treat = single["variations"][1]
    assert last["variations"]["treatment"]["relative"]["ci"] == pytest.approx(
        treat["relative"]["ci"], rel=1e-9
    )
    for arm, entry in zip(("control", "treatment"), single["variations"], strict=True):
        # plain means for every arm, CUPED's adjusted one only beside it (never mixed)
        assert last["variations"][arm]["mean"] == pytest.approx(entry["mean"], rel=1e-9)
    assert last["variations"]["treatment"]["adjusted_mean"] == pytest.approx(
        treat["adjusted_mean"], rel=1e-9
    )
    counts = [p["users"]["treatment"] for p in report["cumulative"]["buy"]]
    assert counts == sorted(counts) and counts[-1] == int((variation == "treatment").sum())
    ios = report["dimensions"]["platform"]["ios"]["users"]
    assert sum(ios.values()) == int((platform == "ios").sum())
    assert set(report["dimensions"]["user_type"]) == {"new", "returning"}
    text = render_table(report)
    assert "buy" in text and "aov" in text and "sample ratio" in text


def test_bayesian_reports_chance_to_beat_control() -> None:
    variation, day, platform, returning, v = _population(2, 4000)
    report = build_report(
        _record({"engine": "bayesian", "correction": "none"}),
        METRICS,
        _rows(variation, day, platform, returning, v),
        start=START,
        end=START + timedelta(days=5),
        analysed_at=START,
    )
    row = report["summary"][0]
    assert 0 <= row["chance_to_beat_control"] <= 1 and "p_value" not in row
    assert "chance to beat" in render_table(report)


def test_sample_ratio_mismatch_is_flagged_against_configured_weights() -> None:
    variation, day, platform, returning, v = _population(3, 6000, weights=(0.6, 0.4))
    rows = _rows(variation, day, platform, returning, v)
    fair = build_report(_record(), METRICS, rows, start=START, end=START, analysed_at=START)
    assert fair["srm"]["mismatch"] is True
    told = build_report(
        _record(weights=(0.6, 0.4)), METRICS, rows, start=START, end=START, analysed_at=START
    )
    assert told["srm"]["mismatch"] is False


def test_thin_or_empty_data_is_reported_as_such() -> None:
    empty = build_report(
        _record(), METRICS, SufficientRows({}, 0), start=START, end=START, analysed_at=START
    )
    assert empty["srm"] is None and empty["summary"] == []
    assert all("error" in m for m in empty["metrics"])
    variation, day, platform, returning, v = _population(4, 3)
    thin = build_report(
        _record(),
        METRICS,
        _rows(variation, day, platform, returning, v),
        start=START,
        end=START,
        analysed_at=START,
    )
    assert all("not enough data" in m.get("error", "not enough data") for m in thin["metrics"])
    assert isinstance(date.fromisoformat(thin["cumulative"]["buy"][0]["date"]), date)


def test_sequential_setting_reaches_the_engine_and_widens_intervals() -> None:
    variation, day, platform, returning, v = _population(5, 5000)
    rows = _rows(variation, day, platform, returning, v)
    width = {}
    for sequential in (False, True):
        report = build_report(
            _record({"sequential": sequential, "correction": "none"}),
            METRICS,
            rows,
            start=START,
            end=START,
            analysed_at=START,
        )
        assert report["settings"]["sequential"] is sequential
        lo, hi = report["summary"][0]["relative_ci"]
        width[sequential] = hi - lo
    assert width[True] > width[False]  # always-valid intervals pay for peeking
