"""A report never contradicts itself: the verdict, the p-value (or chance to beat control), the
interval and the colour shown for a metric come from one test.

Property: for random sufficient statistics and settings (frequentist or Bayesian, sequential or
not, any correction, any alpha, either direction of "better"), a row says better/worse exactly
when its shown relative interval excludes zero, the shown p-value is below alpha exactly then
too, the direction agrees with the interval's side of zero, and the chart colour follows the
verdict. Cases within 1e-9 of the threshold are skipped: there the two sides differ only by
floating-point rounding of the same quantity.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kirana.console import charts
from kirana.experiments.metrics import parse_metric
from kirana.experiments.plots import _colour, _interval_label
from kirana.experiments.reports import summary_row
from kirana.experiments.stats import analyze

_COLOURS = {"better": "#1a7f37", "worse": "#cf222e", "inconclusive": "#57606a"}


@st.composite
def _binomial_arm(draw: st.DrawFn, name: str) -> dict[str, Any]:
    n = draw(st.integers(2, 5000))
    return {"name": name, "n": n, "sum": draw(st.integers(0, n))}


@st.composite
def _mean_arm(draw: st.DrawFn, name: str) -> dict[str, Any]:
    n = draw(st.integers(2, 5000))
    mean = draw(st.floats(-50, 200, allow_nan=False))
    sd = draw(st.floats(0, 100, allow_nan=False))
    total = mean * n
    return {"name": name, "n": n, "sum": total, "sum_squares": total * mean + sd * sd * (n - 1)}


@st.composite
def _metric(draw: st.DrawFn, index: int, arms: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["binomial", "mean"]))
    make = _binomial_arm if kind == "binomial" else _mean_arm
    names = ["control"] + [f"t{i}" for i in range(1, arms)]
    return {
        "name": f"m{index}",
        "metric_type": kind,
        "variations": [draw(make(name)) for name in names],
    }


@st.composite
def _request(draw: st.DrawFn) -> dict[str, Any]:
    arms = draw(st.integers(2, 3))
    metrics = [draw(_metric(i, arms)) for i in range(draw(st.integers(1, 3)))]
    engine = draw(st.sampled_from(["frequentist", "bayesian"]))
    request: dict[str, Any] = {
        "engine": engine,
        "alpha": draw(st.sampled_from([0.01, 0.05, 0.1, 0.2])),
        "metrics": metrics,
    }
    request["binomial_variance"] = draw(st.sampled_from(["population", "sample"]))
    if engine == "bayesian":
        request["bayesian_relative"] = draw(st.sampled_from(["linear", "lognormal"]))
    if engine == "frequentist":
        request["correction"] = draw(st.sampled_from(["none", "holm", "bh", "bonferroni"]))
        if draw(st.booleans()):
            request |= {"sequential": True, "sequential_tuning_n": draw(st.integers(100, 20000))}
    return request


def _near(x: float, threshold: float) -> bool:
    return abs(x - threshold) <= 1e-9 * max(threshold, 1e-300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_request(), higher_is_better=st.booleans())
def test_verdict_interval_p_value_and_colour_come_from_one_test(
    request: dict[str, Any], higher_is_better: bool
) -> None:
    result = analyze(request)
    alpha = request["alpha"]
    rows = []
    for m in result["metrics"]:
        metric = parse_metric(
            {
                "key": m["name"],
                "type": "binomial",
                "event": "E",
                "higher_is_better": higher_is_better,
            }
        )
        rows += [summary_row(metric, v, request["engine"], alpha) for v in m["variations"][1:]]
    for row in rows:
        lo, hi = row["relative_ci"]
        if request["engine"] == "bayesian":
            chance = row["chance_to_beat_control"]
            assume(chance is not None)
            assume(not _near(chance, 1 - alpha / 2) and not _near(chance, alpha / 2))
            decided = chance > 1 - alpha / 2 or chance < alpha / 2
        else:
            p = row["p_value_adjusted"]
            assume(p is not None and not _near(p, alpha))
            decided = p < alpha
            if request["correction"] == "none":
                assert row["interval_alpha"] == alpha and p == row["p_value"]
        assume(lo is not None and hi is not None)
        excludes_zero = lo > 0 or hi < 0
        assert decided == excludes_zero, row
        assert (row["verdict"] != "inconclusive") == excludes_zero, row
        if excludes_zero:
            assert (row["verdict"] == "better") == ((lo > 0) == higher_is_better), row
        assert _colour(row) == _COLOURS[row["verdict"]]
    if rows:
        marker = charts.lift_intervals(rows)["data"][0]["marker"]["color"]
        assert marker == [_COLOURS[r["verdict"]] for r in rows]


def test_the_44_user_case_no_longer_calls_a_winner_on_an_interval_through_zero() -> None:
    """22 users per arm, 1 vs 5 purchases: a +400% lift whose relative interval spans zero.

    The absolute test alone is significant here, which is how the console showed "better"
    in green beside an interval through zero."""
    request = {
        "correction": "holm",
        "metrics": [
            {
                "name": "purchase",
                "metric_type": "binomial",
                "variations": [{"n": 22, "sum": 1}, {"n": 22, "sum": 6}],
            }
        ],
    }
    variation = analyze(request)["metrics"][0]["variations"][1]
    metric = parse_metric({"key": "purchase", "type": "binomial", "event": "Order Completed"})
    row = summary_row(metric, variation, "frequentist", 0.05)
    lo, hi = row["relative_ci"]
    assert row["relative_lift"] > 3 and lo < 0 < hi
    assert row["p_value_adjusted"] >= 0.05 and row["verdict"] == "inconclusive"
    assert variation["significant"] is True  # the absolute test: a different scale


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        ({"engine": "bayesian", "alpha": 0.05}, "95% credible intervals"),
        ({"engine": "frequentist", "alpha": 0.1, "correction": "none"}, "90% confidence intervals"),
        (
            {"engine": "frequentist", "alpha": 0.05, "correction": "holm"},
            "95% confidence intervals, holm-corrected",
        ),
    ],
)
def test_chart_title_names_the_intervals_it_draws(settings: dict, label: str) -> None:
    assert _interval_label({"settings": settings}) == label
