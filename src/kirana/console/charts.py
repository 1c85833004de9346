"""Plotly figure specifications (plain ``{data, layout}`` dicts) for the console's charts.

Pure: the server builds the figures from service results and the page hands them to the
Plotly bundle shipped in the ``plotly`` wheel (``static/console.js`` draws every
``<script type="application/json" class="chart">``). No hand-drawn SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 40},
    "height": 280,
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "legend": {"orientation": "h", "y": -0.2},
}


def figure(title: str, data: list[dict[str, Any]], **layout: Any) -> dict[str, Any]:
    """A figure; without any point it says so instead of drawing empty axes."""
    if not any(trace.get("x") or trace.get("y") for trace in data):
        layout = {
            **layout,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [{"text": "No data yet", "showarrow": False, "font": {"size": 16}}],
        }
    return {"data": data, "layout": {**_LAYOUT, "title": {"text": title}, **layout}}


def lines(
    title: str, series: Mapping[str, tuple[Sequence[Any], Sequence[float]]], y_title: str
) -> dict[str, Any]:
    """One line per named series of (time, y)."""
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": name, "x": list(x), "y": list(y)}
        for name, (x, y) in series.items()
    ]
    return figure(
        title,
        data,
        xaxis={"type": "date"},
        yaxis={"title": {"text": y_title}, "rangemode": "tozero"},
    )


def bars(
    title: str, x: Sequence[Any], y: Sequence[float], y_title: str, *, dates: bool = False
) -> dict[str, Any]:
    """One bar per x (categories, or times with ``dates``)."""
    data = [{"type": "bar", "x": list(x), "y": list(y), "name": y_title}]
    axis = {"type": "date"} if dates else {"type": "category", "automargin": True}
    return figure(title, data, xaxis=axis, yaxis={"title": {"text": y_title}}, showlegend=False)


def stacked_bars(
    title: str,
    series: Mapping[str, tuple[Sequence[Any], Sequence[float]]],
    y_title: str,
    *,
    dates: bool = False,
) -> dict[str, Any]:
    """Bars stacked by series name (per time with ``dates``, else per category)."""
    data = [
        {"type": "bar", "name": name, "x": list(x), "y": list(y)} for name, (x, y) in series.items()
    ]
    axis = {"type": "date"} if dates else {"type": "category"}
    return figure(title, data, barmode="stack", xaxis=axis, yaxis={"title": {"text": y_title}})


def lift_intervals(summary: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every metric and treatment: the relative lift with its interval, as the report gives it."""
    labels = [f"{r['metric']} · {r['variation']}" for r in summary]
    lifts = [_pct(r["relative_lift"]) for r in summary]
    lows = [_pct(r["relative_ci"][0]) for r in summary]
    highs = [_pct(r["relative_ci"][1]) for r in summary]
    colours = {"better": "#1a7f37", "worse": "#cf222e", "inconclusive": "#57606a"}
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "x": lifts,
            "y": labels,
            "marker": {"size": 10, "color": [colours.get(r["verdict"]) for r in summary]},
            "error_x": {
                "type": "data",
                "symmetric": False,
                "array": [_gap(h, m) for h, m in zip(highs, lifts, strict=True)],
                "arrayminus": [_gap(m, lo) for m, lo in zip(lifts, lows, strict=True)],
            },
            "text": [r["verdict"] for r in summary],
            "hovertemplate": "%{y}: %{x:.2f}% (%{text})<extra></extra>",
            "name": "relative lift",
        }
    ]
    return figure(
        "Relative lift with its interval",
        data,
        height=max(200, 60 + 40 * len(summary)),
        xaxis={"title": {"text": "lift (%)"}, "zeroline": True, "zerolinewidth": 2},
        yaxis={"automargin": True, "autorange": "reversed"},
        showlegend=False,
        shapes=[{"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1}],
    )


def cumulative_effect(metric: str, points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One metric's relative lift over time (units exposed by each day), per treatment,
    with its interval as a band."""
    treatments: dict[str, dict[str, list[Any]]] = {}
    for point in points:
        for name, v in (point.get("variations") or {}).items():
            rel = v.get("relative")
            if rel is None:
                continue  # the control has no lift
            t = treatments.setdefault(name, {"x": [], "y": [], "lo": [], "hi": []})
            t["x"].append(point["date"])
            t["y"].append(_pct(rel["estimate"]))
            t["lo"].append(_pct(rel["ci"][0]))
            t["hi"].append(_pct(rel["ci"][1]))
    data: list[dict[str, Any]] = []
    for name, t in treatments.items():
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": t["x"] + t["x"][::-1],
                "y": t["hi"] + t["lo"][::-1],
                "fill": "toself",
                "line": {"width": 0},
                "opacity": 0.25,
                "name": f"{name} interval",
                "hoverinfo": "skip",
            }
        )
        data.append(
            {"type": "scatter", "mode": "lines+markers", "x": t["x"], "y": t["y"], "name": name}
        )
    return figure(
        f"{metric}: cumulative effect",
        data,
        xaxis={"type": "date", "tickformat": "%b %d", "dtick": 86_400_000},
        yaxis={"title": {"text": "lift (%)"}, "zeroline": True, "zerolinewidth": 2},
    )


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
