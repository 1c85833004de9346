"""PNG charts of a report: lift with intervals, and the cumulative effect over time.

The same numbers are in the report's JSON (``summary`` and ``cumulative``) for the console to
chart itself; these images are for the CLI, e-mails and tickets. matplotlib runs with the Agg
backend (no display) and each figure is closed after rendering, so a long-running API process
does not accumulate figures.
"""

from __future__ import annotations

import io
from typing import Any

_GOOD, _BAD, _NEUTRAL = "#1a7f37", "#cf222e", "#57606a"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _colour(row: dict[str, Any]) -> str:
    return {"better": _GOOD, "worse": _BAD}.get(row.get("verdict", ""), _NEUTRAL)


def _draw_lift(ax: Any, rows: list[dict[str, Any]], title: str) -> None:
    labels = []
    for y, row in enumerate(reversed(rows)):
        est = row["relative_lift"]
        lo, hi = row["relative_ci"]
        label = f"{row['metric']}: {row['variation']}" + (
            " (guardrail)" if row["guardrail"] else ""
        )
        labels.append(label)
        if est is None or lo is None or hi is None:
            ax.text(0, y, "n/a", va="center", ha="center", color=_NEUTRAL)
            continue
        colour = _colour(row)
        ax.plot([lo * 100, hi * 100], [y, y], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot([est * 100], [y], "o", color=colour, markersize=7)
        ax.annotate(
            f"{est * 100:+.1f}% [{lo * 100:+.1f}, {hi * 100:+.1f}]",
            (hi * 100, y),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.7, max(len(labels) - 0.3, 0.7))
    ax.set_xlabel("relative lift vs control (%), with interval")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.25)


def lift_png(report: dict[str, Any], metric: str | None = None) -> bytes:
    """Relative lift with its interval for every metric x variation (or one metric's)."""
    plt = _pyplot()
    rows = [r for r in report["summary"] if metric is None or r["metric"] == metric]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * max(len(rows), 1)))
    _draw_lift(ax, rows, f"{report['experiment']}: lift with {_interval_label(report)}")
    return _png(fig)


def _interval_label(report: dict[str, Any]) -> str:
    """What the drawn intervals are: with a correction each row's is at its corrected level
    (the one its verdict used), so the title says so rather than quoting the plain level."""
    settings = report["settings"]
    level = round((1 - settings["alpha"]) * 100)
    if settings["engine"] == "bayesian":
        return f"{level}% credible intervals"
    correction = settings.get("correction", "none")
    if correction != "none":
        return f"{level}% confidence intervals, {correction}-corrected"
    return f"{level}% confidence intervals"


def _draw_cumulative(ax: Any, report: dict[str, Any], metric: str, title: str) -> None:
    points = report["cumulative"].get(metric)
    if points is None:
        raise KeyError(metric)
    control = report["variations"][0]["key"]
    dates = [p["date"] for p in points]
    x = list(range(len(dates)))
    for variation in [v["key"] for v in report["variations"][1:]]:
        rels = [p.get("variations", {}).get(variation, {}).get("relative") or {} for p in points]
        est = [_pct(r.get("estimate")) for r in rels]
        lo = [_pct((r.get("ci") or [None, None])[0]) for r in rels]
        hi = [_pct((r.get("ci") or [None, None])[1]) for r in rels]
        line = ax.plot(x, est, marker="o", markersize=3, label=f"{variation} vs {control}")[0]
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
    ax.axhline(0, color="black", linewidth=0.8)
    step = max(1, len(dates) // 8)
    ax.set_xticks(x[::step], dates[::step], rotation=30, ha="right")
    ax.set_ylabel("relative lift (%)")
    ax.set_xlabel("cumulative effect: units first exposed on or before")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(report["variations"]) > 1:
        ax.legend(loc="best", fontsize=8)


def _pct(value: float | None) -> float:
    return float("nan") if value is None else value * 100


def cumulative_png(report: dict[str, Any], metric: str) -> bytes:
    """The metric's relative lift per treatment by exposure day, with its interval band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        _draw_cumulative(
            ax, report, metric, f"{report['experiment']}: cumulative effect on {metric}"
        )
    except KeyError:
        plt.close(fig)
        raise
    return _png(fig)


def metric_png(report: dict[str, Any], metric: str) -> bytes:
    """Both charts of one metric in one image: lift (top) and cumulative effect (bottom)."""
    plt = _pyplot()
    if metric not in report["cumulative"]:
        raise KeyError(metric)
    rows = [r for r in report["summary"] if r["metric"] == metric]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6.5), gridspec_kw={"height_ratios": [1, 2.2]}
    )
    _draw_lift(top, rows, f"{report['experiment']}: {metric} (lift, {_interval_label(report)})")
    _draw_cumulative(bottom, report, metric, "")
    fig.tight_layout()
    return _png(fig)


__all__ = ["cumulative_png", "lift_png", "metric_png"]
