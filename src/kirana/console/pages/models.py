"""Models: each job's current run with its evaluation against the baseline, the run
history, and rolling an output back to an earlier run (the API's own route functions,
so the console and the API share one implementation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from kirana.api.deps import PlatformDep
from kirana.api.routes import models as model_routes
from kirana.console import flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import render

router = APIRouter()


def evaluation(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``holdout_<measure>`` next to the baseline's same measure (docs/models.md)."""
    rows = []
    for key, value in sorted(metrics.items()):
        if not key.startswith("holdout_"):
            continue
        measure = key.removeprefix("holdout_")
        baseline = next(
            (
                (name, v)
                for name, v in metrics.items()
                if name.startswith("baseline_") and name.endswith("_" + measure)
            ),
            (None, None),
        )
        rows.append(
            {"measure": measure, "model": value, "baseline": baseline[0], "base": baseline[1]}
        )
    return rows


@router.get("/console/models", response_class=HTMLResponse)
async def models_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    jobs = await run_in_threadpool(model_routes.list_jobs, platform, user.token)
    runs = await run_in_threadpool(model_routes.list_runs, platform, user.token, None, 50)
    current = {j.current.run_id for j in jobs if j.current is not None}
    return render(
        request,
        "models.html",
        user,
        title="Models",
        jobs=[
            {**j.model_dump(), "evaluation": evaluation(j.current.metrics if j.current else {})}
            for j in jobs
        ],
        runs=[r.model_dump() for r in runs],
        current=current,
        notice=flow.notice(request),
    )


@router.post("/console/models/{output}/rollback")
async def rollback(
    output: str, platform: PlatformDep, user: AdminDep, to_run: Annotated[str, Form()] = ""
) -> Response:
    """Make an earlier run's output current again, in the lake and in serving or profiles."""
    body = model_routes.RollbackRequest(to_run=to_run)
    await run_in_threadpool(model_routes.rollback, output, body, platform, user.token)
    return flow.back("/console/models", "rolled_back", output)
