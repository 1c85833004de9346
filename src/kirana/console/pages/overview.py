"""Overview: is data flowing, landing, and leaving? Charts over time plus current status."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kirana.api.deps import PlatformDep
from kirana.console import charts, overview
from kirana.console.auth import UserDep
from kirana.console.templating import render
from kirana.destinations import service as destination_service
from kirana.destinations.extension import delivery_store

router = APIRouter()


@router.get("/console", response_class=HTMLResponse)
async def overview_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    destinations = destination_service.status(delivery_store(platform))
    lag = overview.history(platform)
    await run_in_threadpool(lag.sample, platform, destinations)
    lake = await run_in_threadpool(overview.lake_activity, platform.settings.lake_dir)
    quarantine = await run_in_threadpool(overview.quarantine_by_hour, platform)
    runs = await run_in_threadpool(overview.model_runs, platform, 50)
    per_code: dict[str, tuple[list[str], list[float]]] = {}
    for (code, hour), n in sorted(quarantine["series"].items(), key=lambda kv: kv[0][1]):
        xs, ys = per_code.setdefault(code, ([], []))
        xs.append(hour)
        ys.append(n)
    run_counts: dict[str, tuple[list[str], list[float]]] = {}
    for status in ("succeeded", "failed", "running", "interrupted"):
        by_job: dict[str, int] = {}
        for r in runs:
            if r["status"] == status:
                by_job[r["job"]] = by_job.get(r["job"], 0) + 1
        if by_job:
            run_counts[status] = (list(by_job), list(by_job.values()))
    newest = lake["newest"]
    freshness = (datetime.now(UTC) - newest).total_seconds() if newest is not None else None
    figures = {
        "events": charts.bars(
            "Events landed per second (per-minute average, last hour)",
            lake["minutes"],
            [n / 60 for n in lake["counts"]],
            "events/s",
            dates=True,
        ),
        "consumer_lag": charts.lines(
            "Consumer lag (bytes of log behind)", lag.series("consumers"), "bytes"
        ),
        "delivery_lag": charts.lines(
            "Delivery lag (oldest queued record)", lag.series("destinations"), "seconds"
        ),
        "quarantine": charts.stacked_bars(
            "Quarantined events per hour", per_code, "events", dates=True
        ),
        "runs": charts.stacked_bars("Model job runs (latest 50) by status", run_counts, "runs"),
    }
    return render(
        request,
        "overview.html",
        user,
        title="Overview",
        charts=True,
        figures=figures,
        lake=lake,
        freshness=freshness,
        consumers=platform.consumer_status(),
        destinations=destinations,
        quarantine=quarantine,
        runs=runs[:10],
        log_end=platform.log.end_offset,
    )
