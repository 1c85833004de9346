"""Experiments, feature flags and metrics; server-side assignment; reports and plots; and the
GrowthBook SDK features endpoint (``GET /api/features/{clientKey}``).

Thin: every rule lives in :mod:`kirana.experiments.service` and its neighbours. Definitions are
written with an admin token and read with a viewer token; ``/v1/experiments/assign`` and the
features endpoint take a source's write key, like the tracking API, because apps hold those.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.collect.service import CollectError, Credentials
from kirana.experiments.assignment import ExperimentDefinitionError
from kirana.experiments.platform import Experiments, experiments
from kirana.experiments.service import ConflictError, NotFoundError
from kirana.runtime import Platform, SourceCache

v1 = APIRouter(prefix="/v1", tags=["experiments"])
sdk_router = APIRouter(tags=["experiments"])

T = TypeVar("T")

_EXAMPLE = {
    "key": "checkout-redesign",
    "variations": [{"key": "control"}, {"key": "one-page", "value": {"steps": 1}}],
    "weights": [0.5, 0.5],
    "metrics": ["purchase", "revenue"],
    "analysis": {"engine": "frequentist", "correction": "holm"},
}


def _call(fn: Callable[[], T]) -> T:
    """Map the service's errors onto HTTP: 422 invalid, 404 unknown, 409 wrong state."""
    try:
        return fn()
    except ExperimentDefinitionError as exc:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_definition",
                "message": str(exc),
                "field": exc.field,
                "rule": exc.rule,
            },
        ) from exc
    except NotFoundError as exc:
        raise HTTPException(404, detail={"code": "not_found", "message": str(exc)}) from exc
    except ConflictError as exc:
        raise HTTPException(409, detail={"code": "conflict", "message": str(exc)}) from exc


def _exp(platform: Platform) -> Experiments:
    return experiments(platform)


#: the writes refused when they contradict what is stored (`_call`)
_CONFLICT = {
    409: {
        "description": "Contradicts what is stored (`conflict`): a duplicate key, "
        "an experiment not in the right state, or a definition still in use"
    }
}
_DEFINITION = "The definition: fields in docs/experiments.md"


# -- experiments ------------------------------------------------------------------------


@v1.get("/experiments")
def list_experiments(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every experiment with its status, lifecycle times and exposures so far."""
    exp = _exp(platform)
    out = []
    for record in exp.service.records().values():
        item = record.to_json()
        item["exposures"] = exp.store.exposure_counts(record.key)
        out.append(item)
    return out


@v1.post("/experiments", status_code=201, responses=_CONFLICT)
def create_experiment(
    platform: PlatformDep,
    _: AdminDep,
    definition: dict[str, Any] = Body(
        ..., description=_DEFINITION, openapi_examples={"ab": {"value": _EXAMPLE}}
    ),
) -> dict[str, Any]:
    """Create a draft experiment (fields: docs/experiments.md); start it with `/start`."""
    return _call(lambda: _exp(platform).service.create(definition)).to_json()


@v1.get("/experiments/{key}")
def show_experiment(key: str, platform: PlatformDep, _: ViewerDep) -> dict[str, Any]:
    exp = _exp(platform)
    item = _call(lambda: exp.service.experiment(key)).to_json()
    item["exposures"] = exp.store.exposure_counts(key)
    return item


@v1.put("/experiments/{key}", responses=_CONFLICT)
def update_experiment(
    key: str,
    platform: PlatformDep,
    _: AdminDep,
    definition: dict[str, Any] = Body(..., description=_DEFINITION),
) -> dict[str, Any]:
    """Replace a draft's definition (running and stopped experiments are frozen)."""
    return _call(lambda: _exp(platform).service.update(key, definition)).to_json()


@v1.delete("/experiments/{key}", status_code=204, responses=_CONFLICT)
def delete_experiment(key: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete a draft or stopped experiment (refused while running or referenced)."""
    _call(lambda: _exp(platform).service.delete(key))


@v1.post("/experiments/{key}/start", responses=_CONFLICT)
def start_experiment(key: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """draft -> running: users are assigned from now on."""
    service = _exp(platform).service
    record = _call(lambda: service.start(key)).to_json()
    return {**record, "warnings": service.start_warnings(key)}


@v1.post("/experiments/{key}/stop", responses=_CONFLICT)
def stop_experiment(key: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """running -> stopped: nobody is assigned any more; the report stays available."""
    return _call(lambda: _exp(platform).service.stop(key)).to_json()


# -- server-side assignment -------------------------------------------------------------


class AssignRequest(BaseModel):
    userId: str | None = Field(None, description="The user's id (at least one id is needed)")
    anonymousId: str | None = Field(None, description="The device or session id")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Targeting attributes (profile traits fill the rest)"
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="Segment context for the exposure event (device, os)"
    )
    log: bool = Field(True, description="Log first exposures as `Experiment Viewed` events")


class AssignmentPublic(BaseModel):
    experiment_id: str
    variation_id: str
    variation_index: int
    value: Any
    hash_attribute: str
    hash_value: str
    logged: bool


class AssignResponse(BaseModel):
    assignments: list[AssignmentPublic]


def _source(platform: Platform, request: Request) -> None:
    headers = request.headers
    try:
        key = Credentials(headers.get("authorization"), headers.get("x-write-key")).header_key()
    except CollectError as exc:
        raise HTTPException(exc.status, detail={"code": exc.code, "message": exc.message}) from exc
    if not key:
        raise HTTPException(
            401,
            detail={
                "code": "missing_write_key",
                "message": "send a source's write key as the basic-auth user name or X-Write-Key",
            },
        )
    sources = platform.service("experiments.sources", lambda: SourceCache(platform.store))
    source = sources(key)
    if source is None:
        raise HTTPException(
            401,
            detail={
                "code": "unknown_write_key",
                "message": "unknown write key; create a source with `kirana sources create NAME`",
            },
        )
    if not source.enabled:
        raise HTTPException(
            403,
            detail={"code": "source_disabled", "message": f"source {source.name!r} is disabled"},
        )


@v1.post(
    "/experiments/assign",
    response_model=AssignResponse,
    openapi_extra={"security": [{"writeKeyBasic": []}, {"writeKeyHeader": []}]},
)
def assign(body: AssignRequest, request: Request, platform: PlatformDep) -> AssignResponse:
    """Assign a user to every running experiment and log first exposures, for apps that
    assign on their server rather than in a GrowthBook SDK."""
    _source(platform, request)
    if not body.userId and not body.anonymousId:
        raise HTTPException(
            422,
            detail={"code": "invalid_field", "message": "`userId` or `anonymousId` is required"},
        )
    from kirana.experiments.exposures import user_attributes

    attrs = user_attributes(body.userId, body.anonymousId, body.attributes)
    result = _exp(platform).assigner.assign_for_user(attrs, log=body.log, context=body.context)
    return AssignResponse(assignments=[AssignmentPublic(**x.as_dict()) for x in result])


# -- reports ----------------------------------------------------------------------------


def _report(platform: Platform, key: str, refresh: bool) -> dict[str, Any]:
    from kirana.experiments import analyse

    service = _exp(platform).service
    return _call(lambda: analyse.latest_report(platform.settings, service, key, refresh=refresh))


@v1.get("/experiments/{key}/report")
async def experiment_report(
    key: str,
    platform: PlatformDep,
    _: ViewerDep,
    refresh: bool = Query(False, description="Recompute now instead of serving the stored one"),
) -> dict[str, Any]:
    """Per metric lift with intervals, p-value or chance to beat control, SRM, the cumulative
    effect by day and dimension breakdowns (format: docs/experiments.md#reports).

    Serves the latest stored report when it is current (analysed after the experiment
    stopped, or within `experiments.report_every_minutes`), else analyses now and stores it."""
    return await run_in_threadpool(_report, platform, key, refresh)


_PNG = {200: {"description": "A PNG image", "content": {"image/png": {}}}}


def _png(content: bytes) -> Response:
    return Response(content, media_type="image/png", headers={"Cache-Control": "max-age=60"})


@v1.get("/experiments/{key}/lift.png", response_class=Response, responses=_PNG)
async def lift_plot(key: str, platform: PlatformDep, _: ViewerDep) -> Response:
    """Every metric's lift with its interval, as a PNG."""
    from kirana.experiments.plots import lift_png

    report = await run_in_threadpool(_report, platform, key, False)
    return _png(await run_in_threadpool(lift_png, report))


@v1.get("/experiments/{key}/plots/{metric}.png", response_class=Response, responses=_PNG)
async def metric_plot(
    key: str,
    metric: str,
    platform: PlatformDep,
    _: ViewerDep,
    chart: str = Query("both", pattern="^(both|lift|cumulative)$"),
) -> Response:
    """One metric's lift with interval (top) and cumulative effect over time (bottom)."""
    from kirana.experiments import plots

    report = await run_in_threadpool(_report, platform, key, False)
    if metric not in report["cumulative"]:
        raise HTTPException(
            404,
            detail={"code": "not_found", "message": f"experiment {key!r} has no metric {metric!r}"},
        )
    draw = {"both": plots.metric_png, "cumulative": plots.cumulative_png}.get(chart)
    if draw is None:
        return _png(await run_in_threadpool(plots.lift_png, report, metric))
    return _png(await run_in_threadpool(draw, report, metric))


# -- metrics and flags ------------------------------------------------------------------


@v1.get("/metrics")
def list_metrics(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    import msgspec

    return [msgspec.to_builtins(m) for m in _exp(platform).service.metrics()]


@v1.put("/metrics/{key}", responses=_CONFLICT)
def save_metric(
    key: str,
    platform: PlatformDep,
    _: AdminDep,
    definition: dict[str, Any] = Body(
        ...,
        description="`type` (binomial, count, sum, ratio), `event` and the rest of "
        "the metric fields in docs/experiments.md",
    ),
) -> dict[str, Any]:
    """Create or replace a metric (types binomial, count, sum, ratio; docs/experiments.md)."""
    import msgspec

    metric = _call(lambda: _exp(platform).service.put_metric({**definition, "key": key}))
    return msgspec.to_builtins(metric)


@v1.delete("/metrics/{key}", status_code=204, responses=_CONFLICT)
def delete_metric(key: str, platform: PlatformDep, _: AdminDep) -> None:
    _call(lambda: _exp(platform).service.delete_metric(key))


@v1.get("/flags")
def list_flags(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    import msgspec

    return [msgspec.to_builtins(f) for f in _exp(platform).service.flags()]


@v1.put("/flags/{key}", responses=_CONFLICT)
def save_flag(
    key: str,
    platform: PlatformDep,
    _: AdminDep,
    definition: dict[str, Any] = Body(
        ...,
        description="`default` value and `rules` (force, rollout, experiment): docs/experiments.md",
    ),
) -> dict[str, Any]:
    """Create or replace a feature flag (rules: force values, rollouts, experiments)."""
    import msgspec

    flag = _call(lambda: _exp(platform).service.put_flag({**definition, "key": key}))
    return msgspec.to_builtins(flag)


@v1.delete("/flags/{key}", status_code=204, responses=_CONFLICT)
def delete_flag(key: str, platform: PlatformDep, _: AdminDep) -> None:
    _call(lambda: _exp(platform).service.delete_flag(key))


# -- GrowthBook SDK endpoint ------------------------------------------------------------


class _PayloadCache:
    """The encoded payload per definitions revision, rebuilt at most once a second otherwise
    (phase windows make it depend on the clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[int, float, bytes, str] | None = None

    def get(self, exp: Experiments) -> tuple[bytes, str]:
        revision = exp.service.revision()
        entry = self._entry
        if entry is not None and entry[0] == revision and time.monotonic() - entry[1] < 1.0:
            return entry[2], entry[3]
        with self._lock:
            payload = exp.service.payload()
            features = json.dumps(payload["features"], sort_keys=True, separators=(",", ":"))
            etag = '"' + hashlib.sha256(features.encode()).hexdigest()[:32] + '"'
            body = json.dumps(payload, separators=(",", ":")).encode()
            self._entry = (revision, time.monotonic(), body, etag)
            return body, etag


@sdk_router.get(
    "/api/features/{client_key}",
    response_class=Response,
    responses={
        200: {
            "description": "GrowthBook's SDK payload: `features` and `experiments`",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        304: {"description": "Unchanged since the `If-None-Match` ETag"},
    },
)
def sdk_features(client_key: str, request: Request, platform: PlatformDep) -> Response:
    """Every flag and running experiment in GrowthBook's SDK format: point a GrowthBook SDK's
    `apiHost` at Kirana and use a source's write key as its `clientKey`."""
    sources = platform.service("experiments.sources", lambda: SourceCache(platform.store))
    source = sources(client_key)
    if source is None:
        raise HTTPException(
            404,
            detail={
                "code": "unknown_client_key",
                "message": "unknown client key: use a source's write key (printed by "
                "`kirana sources create` or `kirana sources rotate-key`)",
            },
        )
    if not source.enabled:
        raise HTTPException(
            403,
            detail={"code": "source_disabled", "message": f"source {source.name!r} is disabled"},
        )
    body, etag = platform.service("experiments.payload", _PayloadCache).get(_exp(platform))
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


router = APIRouter()
router.include_router(v1)
router.include_router(sdk_router)
