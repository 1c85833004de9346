"""Reverse-ETL syncs: create, list, run now, run history (thin over the service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.destinations.config import ConfigError
from kirana.destinations.extension import delivery_store
from kirana.destinations.service import AlreadyExists, NotFound
from kirana.syncs import service
from kirana.syncs.model import SyncConfig
from kirana.syncs.runner import SyncBusy

router = APIRouter(prefix="/v1/syncs", tags=["syncs"])


def _error(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(404, detail={"code": "not_found", "message": str(exc)})
    if isinstance(exc, AlreadyExists | SyncBusy):
        code = "already_exists" if isinstance(exc, AlreadyExists) else "busy"
        return HTTPException(409, detail={"code": code, "message": str(exc)})
    return HTTPException(422, detail={"code": "invalid_sync", "message": str(exc)})


_KNOWN = (NotFound, AlreadyExists, SyncBusy, ConfigError)


@router.post(
    "",
    status_code=201,
    responses={
        404: {"description": "The destination or audience named does not exist"},
        409: {"description": "A sync of that name exists (`already_exists`)"},
    },
)
def create_sync(
    body: SyncConfig, platform: PlatformDep, _: AdminDep, replace: bool = False
) -> dict[str, Any]:
    """Create a sync: source (SQL over the lake, or an audience), key, destination, mode."""
    try:
        config = service.create(delivery_store(platform), body.model_dump(), replace=replace)
    except _KNOWN as exc:
        raise _error(exc) from exc
    return config.model_dump(mode="json")


@router.get("")
def list_syncs(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every sync with its last run."""
    return service.listing(delivery_store(platform))


@router.get("/{name}")
def show_sync(name: str, platform: PlatformDep, _: ViewerDep) -> dict[str, Any]:
    try:
        return service.get(delivery_store(platform), name).model_dump(mode="json")
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.post("/{name}/run", responses={409: {"description": "The sync is running now (`busy`)"}})
async def run_sync(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """Run the sync now: diff against the last snapshot and queue only the changes."""
    try:
        return await run_in_threadpool(
            service.run, platform.settings, delivery_store(platform), name
        )
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.get("/{name}/runs")
def sync_runs(
    name: str, platform: PlatformDep, _: ViewerDep, limit: int = Query(20, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """Run history, newest first: row counts (read, added, updated, deleted, queued), errors."""
    try:
        return service.runs(delivery_store(platform), name, limit)
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.delete(
    "/{name}", status_code=204, responses={409: {"description": "The sync is running (`busy`)"}}
)
def delete_sync(name: str, platform: PlatformDep, _: AdminDep) -> None:
    try:
        service.delete(platform.settings, delivery_store(platform), name)
    except _KNOWN as exc:
        raise _error(exc) from exc
