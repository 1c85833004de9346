"""Syncs (reverse ETL): each run's diff against the last snapshot (added, updated, deleted,
unchanged), run history, and running one now (the same service as the API and CLI)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import render
from kirana.destinations.config import ConfigError
from kirana.destinations.extension import delivery_store
from kirana.syncs import service
from kirana.syncs.runner import SyncBusy

router = APIRouter()


def _refusal(exc: Exception) -> HTTPException:
    """The service's refusals, worded as the API words them."""
    if isinstance(exc, service.NotFound):
        return HTTPException(404, detail={"code": "not_found", "message": str(exc)})
    if isinstance(exc, SyncBusy):
        return HTTPException(409, detail={"code": "busy", "message": str(exc)})
    return HTTPException(422, detail={"code": "invalid_sync", "message": str(exc)})


@router.get("/console/syncs/{name}", response_class=HTMLResponse)
def sync_page(request: Request, name: str, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    store = delivery_store(platform)
    try:
        config = service.get(store, name).model_dump(mode="json")
        runs = service.runs(store, name, 50)
    except service.NotFound as exc:
        raise _refusal(exc) from exc
    return render(
        request,
        "sync.html",
        user,
        title=f"Sync {name}",
        name=name,
        config=config,
        runs=runs,
        notice=flow.notice(request),
    )


@router.post("/console/syncs/{name}/run")
async def run_now(name: str, platform: PlatformDep, user: AdminDep) -> Response:
    """Run the sync now: read, diff against the last snapshot, queue the changes."""
    try:
        await run_in_threadpool(service.run, platform.settings, delivery_store(platform), name)
    except (service.NotFound, SyncBusy, ConfigError) as exc:
        raise _refusal(exc) from exc
    return flow.back(f"/console/syncs/{name}", "sync_ran", name)
