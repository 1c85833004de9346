"""Destinations: create, inspect, health, dead letters and replay (thin over the service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.destinations import service
from kirana.destinations.config import ConfigError, DestinationConfig, redacted
from kirana.destinations.extension import delivery_store
from kirana.destinations.router import CONSUMER_NAME

router = APIRouter(prefix="/v1/destinations", tags=["destinations"])


def _error(exc: Exception) -> HTTPException:
    if isinstance(exc, service.NotFound):
        return HTTPException(404, detail={"code": "not_found", "message": str(exc)})
    if isinstance(exc, service.AlreadyExists):
        return HTTPException(409, detail={"code": "already_exists", "message": str(exc)})
    return HTTPException(422, detail={"code": "invalid_destination", "message": str(exc)})


_KNOWN = (service.NotFound, service.AlreadyExists, ConfigError)


@router.post(
    "",
    status_code=201,
    responses={409: {"description": "A destination of that name exists (`already_exists`)"}},
)
def create_destination(
    body: DestinationConfig, platform: PlatformDep, _: AdminDep, replace: bool = False
) -> dict[str, Any]:
    """Create a destination (``replace=true`` overwrites one of the same name).

    ``settings`` depends on ``kind``: see docs/destinations.md. Secrets are masked
    in every answer.
    """
    try:
        config = service.create(delivery_store(platform), body.model_dump(), replace=replace)
    except _KNOWN as exc:
        raise _error(exc) from exc
    return redacted(config)


@router.get("")
def list_destinations(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every destination's configuration (secrets masked)."""
    return [redacted(c) for c in delivery_store(platform).destinations()]


@router.get("/status")
def destinations_status(platform: PlatformDep, _: ViewerDep) -> dict[str, Any]:
    """Health of every destination: queue depth, lag, error rate, last error, dead letters."""
    store = delivery_store(platform)
    position = store.get_position(CONSUMER_NAME) or 0
    return {
        "router": {
            "position": position,
            "lag_bytes": platform.log.lag(position),
        },
        "destinations": service.status(store),
    }


@router.get("/{name}")
def show_destination(name: str, platform: PlatformDep, _: ViewerDep) -> dict[str, Any]:
    """One destination: configuration and health."""
    try:
        return service.describe(delivery_store(platform), name)
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.delete("/{name}", status_code=204)
def delete_destination(name: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete a destination with its queue and dead letters."""
    try:
        service.delete(delivery_store(platform), name)
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.get("/{name}/dead-letters")
def dead_letters(
    name: str, platform: PlatformDep, _: AdminDep, limit: int = Query(100, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    """Records that ran out of attempts or were refused, with their last error."""
    try:
        return service.dead_letters(delivery_store(platform), name, limit)
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.post("/{name}/replay")
def replay(
    name: str,
    platform: PlatformDep,
    _: AdminDep,
    record_ids: list[str] | None = Body(None, embed=True),
) -> dict[str, int]:
    """Queue dead letters again: all of them, or those in ``record_ids``."""
    try:
        return {"replayed": service.replay(delivery_store(platform), name, record_ids)}
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.get("/{name}/records")
def records(
    name: str,
    platform: PlatformDep,
    _: AdminDep,
    status: str | None = Query(None, pattern="^(queued|delivered|dead)$"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """Per-record delivery status, oldest first."""
    try:
        return service.records(delivery_store(platform), name, status, limit)
    except _KNOWN as exc:
        raise _error(exc) from exc


@router.get("/{name}/records/{record_id}")
def record_status(name: str, record_id: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """Where one record is: queued (with attempts and last error), delivered or dead."""
    try:
        return service.record_status(delivery_store(platform), name, record_id)
    except _KNOWN as exc:
        raise _error(exc) from exc
