"""Experiments and flags: create, start and stop; reports with lift-and-interval charts,
the cumulative effect over time and the sample-ratio check, in the stats engine's words."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import charts, flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import render
from kirana.experiments.assignment import ExperimentDefinitionError
from kirana.experiments.platform import experiments
from kirana.experiments.service import ConflictError, NotFoundError
from kirana.runtime import Platform

router = APIRouter()
T = TypeVar("T")

EXAMPLE = {
    "key": "checkout-redesign",
    "name": "Checkout redesign",
    "variations": [{"key": "control"}, {"key": "one-page", "value": {"steps": 1}}],
    "weights": [0.5, 0.5],
    "hash_attribute": "userId",
    "metrics": [],
    "analysis": {"engine": "frequentist", "correction": "holm"},
}
METRIC_EXAMPLE = {"key": "purchase", "type": "binomial", "event": "Order Completed"}
FLAG_EXAMPLE = {
    "key": "new-checkout",
    "default": False,
    "rules": [{"type": "force", "value": True, "condition": {"plan": "enterprise"}}],
}


def _error(fn: Callable[[], T]) -> tuple[T | None, dict[str, str] | None]:
    """The service's result, or its refusal as ``{code, message}`` (as the API words it)."""
    try:
        return fn(), None
    except ExperimentDefinitionError as exc:
        return None, {"code": "invalid_definition", "message": str(exc)}
    except NotFoundError as exc:
        return None, {"code": "not_found", "message": str(exc)}
    except ConflictError as exc:
        return None, {"code": "conflict", "message": str(exc)}


def _parse(text: str, field: str) -> tuple[Any, dict[str, str] | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, {"code": "invalid_json", "message": f"`{field}`: not valid JSON ({exc})"}


def _list(
    request: Request, platform: Platform, user: Any, status: int = 200, **extra: Any
) -> HTMLResponse:
    exp = experiments(platform)
    items = []
    for record in exp.service.records().values():
        item = record.to_json()
        item["exposures"] = exp.store.exposure_counts(record.key)
        items.append(item)
    texts = {
        "experiment": json.dumps(EXAMPLE, indent=2),
        "metric": json.dumps(METRIC_EXAMPLE, indent=2),
        "flag": json.dumps(FLAG_EXAMPLE, indent=2),
    } | extra.pop("texts", {})
    return render(
        request,
        "experiments.html",
        user,
        status,
        title="Experiments and flags",
        experiments=items,
        metrics=[msgspec.to_builtins(m) for m in exp.service.metrics()],
        flags=[msgspec.to_builtins(f) for f in exp.service.flags()],
        texts=texts,
        notice=flow.notice(request),
        **extra,
    )


@router.get("/console/experiments", response_class=HTMLResponse)
def experiments_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    return _list(request, platform, user)


@router.post("/console/experiments")
def create(
    request: Request,
    platform: PlatformDep,
    user: AdminDep,
    definition: Annotated[str, Form()] = "",
) -> Response:
    """Create a draft experiment from its JSON definition (docs/experiments.md)."""
    data, error = _parse(definition, "definition")
    if error is None:
        record, error = _error(lambda: experiments(platform).service.create(data))
        if error is None:
            return flow.back(f"/console/experiments/{record.key}", "experiment_created", record.key)
    return _list(request, platform, user, 422, error=error, texts={"experiment": definition})


def _save_definition(
    request: Request,
    platform: Platform,
    user: Any,
    definition: str,
    kind: str,
    put: Callable[[Any], Any],
) -> Response:
    """Save a metric or flag definition sent as JSON text; 422 with the form kept on error."""
    data, error = _parse(definition, "definition")
    if error is None and not isinstance(data, dict):
        error = {"code": "invalid_definition", "message": "`definition`: must be a JSON object"}
    if error is None:
        _, error = _error(lambda: put(data))
        if error is None:
            return flow.back("/console/experiments", f"{kind}_saved", str(data.get("key")))
    return _list(request, platform, user, 422, error=error, texts={kind: definition})


@router.post("/console/metrics")
def save_metric(
    request: Request, platform: PlatformDep, user: AdminDep, definition: Annotated[str, Form()] = ""
) -> Response:
    put = experiments(platform).service.put_metric
    return _save_definition(request, platform, user, definition, "metric", put)


@router.post("/console/flags")
def save_flag(
    request: Request, platform: PlatformDep, user: AdminDep, definition: Annotated[str, Form()] = ""
) -> Response:
    put = experiments(platform).service.put_flag
    return _save_definition(request, platform, user, definition, "flag", put)


def _report(platform: Platform, key: str, refresh: bool) -> dict[str, Any]:
    from kirana.experiments import analyse

    service = experiments(platform).service
    return analyse.latest_report(platform.settings, service, key, refresh=refresh)


@router.get("/console/experiments/{key}", response_class=HTMLResponse)
async def experiment_page(
    request: Request, key: str, platform: PlatformDep, user: UserDep
) -> HTMLResponse:
    exp = experiments(platform)
    record, error = _error(lambda: exp.service.experiment(key))
    if record is None:
        raise HTTPException(404, detail=error)
    report = None
    if record.started_at is not None:
        # the stored report as it is (its time is on the page; the scheduled job and
        # "Analyse now" refresh it): a page must not wait minutes for an analysis
        report = exp.store.latest_report(key)
        if report is None:
            report, error = await run_in_threadpool(
                lambda: _error(lambda: _report(platform, key, False))
            )
    figures = {}
    if report and report["summary"]:
        figures["lift"] = charts.lift_intervals(report["summary"])
        for metric, points in report["cumulative"].items():
            figures[f"cumulative-{metric}"] = charts.cumulative_effect(metric, points)
    return render(
        request,
        "experiment.html",
        user,
        title=f"Experiment {key}",
        charts=bool(figures),
        record=record.to_json(),
        exposures=exp.store.exposure_counts(key),
        report=report,
        figures=figures,
        error=error,
        notice=flow.notice(request),
    )


def _transition(platform: Platform, key: str, action: str) -> Response:
    service = experiments(platform).service
    step = service.start if action == "start" else service.stop
    _, error = _error(lambda: step(key))
    if error is not None:
        status = 404 if error["code"] == "not_found" else 409
        raise HTTPException(status, detail=error)
    notice = "experiment_started" if action == "start" else "experiment_stopped"
    return flow.back(f"/console/experiments/{key}", notice, key)


@router.post("/console/experiments/{key}/start")
def start(key: str, platform: PlatformDep, user: AdminDep) -> Response:
    return _transition(platform, key, "start")


@router.post("/console/experiments/{key}/stop")
def stop(key: str, platform: PlatformDep, user: AdminDep) -> Response:
    return _transition(platform, key, "stop")


@router.post("/console/experiments/{key}/analyse")
async def analyse_now(key: str, platform: PlatformDep, user: AdminDep) -> Response:
    """Analyse now instead of waiting for the scheduled job (as ``?refresh=true``)."""
    _, error = await run_in_threadpool(lambda: _error(lambda: _report(platform, key, True)))
    if error is not None:
        raise HTTPException(404 if error["code"] == "not_found" else 409, detail=error)
    return flow.back(f"/console/experiments/{key}", "refreshed", key)
