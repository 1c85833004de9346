"""Run an experiment's analysis over the lake: the one place reports touch I/O.

DuckDB reads the ``events`` Delta table (through :func:`kirana.lake.catalog.connect`), the
query in :mod:`kirana.experiments.metric_sql` returns per-group sufficient statistics, and
:func:`kirana.experiments.reports.build_report` does the rest in memory.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kirana.experiments.metric_sql import SufficientRows, query_sufficient_stats
from kirana.experiments.reports import build_report
from kirana.experiments.service import ConflictError, ExperimentService


def analysis_window(
    service: ExperimentService, key: str, now: datetime
) -> tuple[datetime, datetime]:
    record = service.experiment(key)
    if record.started_at is None:
        raise ConflictError(
            f"experiment {key!r} has not started; start it with `kirana experiments start {key}`"
        )
    return record.started_at, record.stopped_at or now


def report(
    service: ExperimentService,
    lake_dir: Path,
    key: str,
    *,
    now: datetime | None = None,
    conn: Any = None,
    memory_mb: int | None = None,
    spill_dir: Path | None = None,
) -> dict[str, Any]:
    """The report of experiment ``key`` as of ``now`` (default: the current time).

    ``conn`` may be a DuckDB connection that already has an ``events`` view (benchmarks);
    by default the lake under ``lake_dir`` is opened, with DuckDB capped at ``memory_mb``
    and spilling to ``spill_dir`` beyond it (a 10M-user analysis would otherwise hold every
    user's per-metric values in memory at once).
    """
    now = now or datetime.now(UTC)
    record = service.experiment(key)
    start, end = analysis_window(service, key, now)
    metrics = [service.metric(m) for m in record.metrics]
    own = conn is None
    if own:
        from kirana.lake.catalog import connect, lake_tables

        if "events" not in lake_tables(lake_dir):
            rows = SufficientRows({}, 0)
            return build_report(record, metrics, rows, start=start, end=end, analysed_at=now)
        conn = connect(lake_dir)
        if memory_mb is not None:
            conn.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
        if spill_dir is not None:
            spill_dir.mkdir(parents=True, exist_ok=True)
            conn.execute("SET temp_directory = ?", [str(spill_dir)])
    try:
        rows = query_sufficient_stats(
            conn,
            key,
            metrics,
            start=start,
            end=end,
            lookback_days=record.analysis.lookback_days,
        )
    finally:
        if own:
            conn.close()
    return build_report(record, metrics, rows, start=start, end=end, analysed_at=now)


def report_for(settings: Any, service: ExperimentService, key: str) -> dict[str, Any]:
    """:func:`report` with the lake, memory cap and spill directory the settings choose."""
    return report(
        service,
        settings.lake_dir,
        key,
        memory_mb=settings.experiments.analysis_memory_mb,
        spill_dir=settings.state_dir / "duckdb-tmp",
    )


def _is_current(
    stored: dict[str, Any] | None, record: Any, max_age_seconds: float, now: datetime
) -> bool:
    """A stored report still answers: analysed after the experiment stopped, or recently."""
    if stored is None:
        return False
    analysed = datetime.fromisoformat(stored["analysed_at"])
    if record.stopped_at is not None and analysed >= record.stopped_at:
        return True
    return (now - analysed).total_seconds() < max_age_seconds


def latest_report(
    settings: Any, service: ExperimentService, key: str, *, refresh: bool = False
) -> dict[str, Any]:
    """The stored report of ``key`` if it is current, else a new one (stored for next time).

    Current means analysed after the experiment stopped, or within the scheduled period
    (``experiments.report_every_minutes``; 1 minute when no job runs).
    """
    now = datetime.now(UTC)
    record = service.experiment(key)
    period = settings.experiments.report_every_minutes * 60 or 60.0
    stored = None if refresh else service.store.latest_report(key)
    if _is_current(stored, record, period, now):
        assert stored is not None
        return stored
    fresh = report_for(settings, service, key)
    service.store.save_report(key, fresh)
    return fresh


def refresh_reports(settings: Any, service: ExperimentService) -> dict[str, str]:
    """Re-analyse every running experiment, and each stopped one once after it stopped.

    What the scheduled job runs; returns ``{key: "ok" | error}`` (one failing experiment does
    not stop the others).
    """
    now = datetime.now(UTC)
    out: dict[str, str] = {}
    for key, record in service.records().items():
        if record.started_at is None:
            continue
        if record.stopped_at is not None and _is_current(
            service.store.latest_report(key), record, 0.0, now
        ):
            continue
        try:
            service.store.save_report(key, report_for(settings, service, key))
            out[key] = "ok"
        except Exception as exc:  # reported, retried next period
            out[key] = f"{type(exc).__name__}: {exc}"
    return out


__all__ = ["analysis_window", "latest_report", "refresh_reports", "report", "report_for"]
