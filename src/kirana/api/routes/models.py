"""Model jobs over HTTP: the jobs, their run history, one run, and rolling an output back.

Runs themselves start on the schedule (in the worker) or with ``kirana jobs run``: a model
fit does not belong in the process answering tracking and personalisation requests.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.models.jobs.definitions import JOBS
from kirana.models.jobs.outputs import table_name
from kirana.models.jobs.registry import Run, RunRegistry, registry_path

router = APIRouter(prefix="/v1/models", tags=["models"])


class RunPublic(BaseModel):
    run_id: str
    job: str
    kind: str
    engine: str
    status: str
    parameters: dict[str, Any]
    data_version: dict[str, Any]
    metrics: dict[str, Any]
    output: str | None
    output_version: int | None
    rolled_back_to: str | None
    error: str | None
    started_at: str
    finished_at: str | None
    seconds: float | None


class JobPublic(BaseModel):
    job: str
    description: str
    every_minutes: float
    output_table: str
    current: RunPublic | None


class RollbackRequest(BaseModel):
    to_run: str
    """The earlier succeeded run whose output becomes current again."""


def _registry(platform: PlatformDep) -> RunRegistry:
    """The registry, after marking runs whose process died (see `JobRunner.reap_interrupted`)."""
    from kirana.models.jobs.runner import JobRunner

    runner = JobRunner(platform.settings)
    try:
        runner.reap_interrupted()
    finally:
        runner.close()
    return platform.service(
        "models.registry", lambda: RunRegistry(registry_path(platform.settings.state_dir))
    )


def _public(run: Run | None) -> RunPublic | None:
    return None if run is None else RunPublic.model_validate(run.as_dict())


def _unknown_job(name: str) -> HTTPException:
    return HTTPException(
        404,
        detail={"code": "not_found", "message": f"no job {name!r}; jobs: {', '.join(JOBS)}"},
    )


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(platform: PlatformDep, _: ViewerDep) -> list[JobPublic]:
    """Every model job: schedule, output table in the lake, and the run it currently holds."""
    registry = _registry(platform)
    schedule = platform.settings.models.schedule.model_dump()
    return [
        JobPublic(
            job=spec.name,
            description=spec.description,
            every_minutes=schedule.get(spec.name, 0),
            output_table=table_name(spec.output),
            current=_public(registry.current(spec.output)),
        )
        for spec in JOBS.values()
    ]


@router.get(
    "/runs",
    response_model=list[RunPublic],
    responses={404: {"description": "No such job (`job`)"}},
)
def list_runs(
    platform: PlatformDep,
    _: ViewerDep,
    job: str | None = Query(None, description="Only this job's runs"),
    limit: int = Query(50, ge=1, le=1000, description="At most this many, newest first"),
) -> list[RunPublic]:
    """Run history, newest first: parameters, data version, metrics, output version, errors."""
    if job is not None and job not in JOBS:
        raise _unknown_job(job)
    return [RunPublic.model_validate(r.as_dict()) for r in _registry(platform).runs(job, limit)]


@router.get("/runs/{run_id}", response_model=RunPublic)
def get_run(run_id: str, platform: PlatformDep, _: ViewerDep) -> RunPublic:
    """One run."""
    run = _registry(platform).get(run_id)
    if run is None:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no run {run_id!r}; see /v1/models/runs"}
        )
    return RunPublic.model_validate(run.as_dict())


@router.post(
    "/outputs/{output}/rollback",
    response_model=RunPublic,
    responses={409: {"description": "The job is running (`busy`)"}},
)
def rollback(output: str, body: RollbackRequest, platform: PlatformDep, _: AdminDep) -> RunPublic:
    """Make an earlier run's output current again, in the lake and in serving or profiles."""
    from kirana.models.jobs.locks import JobBusy
    from kirana.models.jobs.runner import JobRunner, RollbackError

    if output not in JOBS:
        raise _unknown_job(output)
    runner = JobRunner(platform.settings)
    try:
        run = runner.rollback(output, body.to_run)
    except RollbackError as exc:
        raise HTTPException(
            422, detail={"code": "invalid_field", "message": f"`to_run`: {exc}"}
        ) from exc
    except JobBusy as exc:
        raise HTTPException(409, detail={"code": "busy", "message": str(exc)}) from exc
    finally:
        runner.close()
    if run.status != "succeeded":
        raise HTTPException(
            500,
            detail={
                "code": "rollback_failed",
                "message": f"{output} is unchanged: {run.error} (run {run.run_id})",
            },
        )
    return RunPublic.model_validate(run.as_dict())
