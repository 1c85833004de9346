"""Chart specifications: empty charts say so; the lift chart is the report's numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kirana.console import charts

lifts = st.floats(-5, 5, allow_nan=False)


def test_a_chart_without_points_says_no_data() -> None:
    fig = charts.lines("Lag", {}, "bytes")
    assert fig["layout"]["annotations"][0]["text"] == "No data yet"
    drawn = charts.lines("Lag", {"loader": (["2026-12-07T10:00:00"], [3])}, "bytes")
    assert "annotations" not in drawn["layout"]


@given(
    rows=st.lists(
        st.tuples(lifts, lifts, lifts, st.sampled_from(["better", "worse", "inconclusive"])),
        min_size=1,
        max_size=8,
    )
)
def test_the_lift_chart_plots_each_estimate_inside_its_interval(rows) -> None:
    summary = [
        {
            "metric": f"m{i}",
            "variation": "treat",
            "relative_lift": sorted(t[:3])[1],
            "relative_ci": [min(t[:3]), max(t[:3])],
            "verdict": t[3],
        }
        for i, t in enumerate(rows)
    ]
    trace = charts.lift_intervals(summary)["data"][0]
    for row, x, up, down in zip(
        summary, trace["x"], trace["error_x"]["array"], trace["error_x"]["arrayminus"], strict=True
    ):
        assert abs(x - row["relative_lift"] * 100) < 1e-9
        assert abs(x + up - row["relative_ci"][1] * 100) < 1e-6
        assert abs(x - down - row["relative_ci"][0] * 100) < 1e-6
        assert up >= -1e-9 and down >= -1e-9
    assert trace["text"] == [r["verdict"] for r in summary]
