"""Destinations: health and lag, create and edit (secrets write-only), dead letters and
replay. Dead letters hold customer data, so as in the API only admins read them."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import render
from kirana.destinations import service
from kirana.destinations.config import ConfigError, redacted
from kirana.destinations.extension import delivery_store
from kirana.destinations.router import CONSUMER_NAME
from kirana.runtime import Platform
from kirana.syncs import service as sync_service

router = APIRouter()
_KNOWN = (service.NotFound, service.AlreadyExists, ConfigError)

EXAMPLE = {
    "name": "crm-webhook",
    "kind": "webhook",
    "settings": {"url": "http://127.0.0.1:9000/hook", "secret": "a-shared-secret-of-16+"},
    "routes": [{"stream": "events", "events": ["Order Completed"]}],
    "max_attempts": 20,
}


def _error(exc: Exception) -> dict[str, str]:
    if isinstance(exc, service.NotFound):
        return {"code": "not_found", "message": str(exc)}
    if isinstance(exc, service.AlreadyExists):
        return {"code": "already_exists", "message": str(exc)}
    return {"code": "invalid_destination", "message": str(exc)}


def _list(
    request: Request, platform: Platform, user: Any, status: int = 200, **extra: Any
) -> HTMLResponse:
    store = delivery_store(platform)
    position = store.get_position(CONSUMER_NAME) or 0
    extra.setdefault("text", json.dumps(EXAMPLE, indent=2))
    return render(
        request,
        "destinations.html",
        user,
        status,
        title="Destinations",
        destinations=service.status(store),
        syncs=sync_service.listing(store),
        router_lag=max(0, platform.log.end_offset - position),
        notice=flow.notice(request),
        **extra,
    )


@router.get("/console/destinations", response_class=HTMLResponse)
def destinations_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    return _list(request, platform, user)


@router.post("/console/destinations")
def save_destination(
    request: Request,
    platform: PlatformDep,
    user: AdminDep,
    definition: Annotated[str, Form()] = "",
    replace: Annotated[str, Form()] = "",
) -> Response:
    """Create, or with ``replace`` overwrite, a destination. Secrets left masked keep their
    stored value (the service's rule), so editing never needs them again."""
    try:
        data = json.loads(definition)
    except json.JSONDecodeError as exc:
        error = {"code": "invalid_json", "message": f"`definition`: not valid JSON ({exc})"}
        return _list(request, platform, user, 422, error=error, text=definition)
    if not isinstance(data, dict):
        error = {"code": "invalid_destination", "message": "`definition`: must be a JSON object"}
        return _list(request, platform, user, 422, error=error, text=definition)
    try:
        config = service.create(delivery_store(platform), data, replace=replace == "yes")
    except _KNOWN as exc:
        return _list(request, platform, user, 422, error=_error(exc), text=definition)
    return flow.back(f"/console/destinations/{config.name}", "destination_saved", config.name)


@router.get("/console/destinations/{name}", response_class=HTMLResponse)
def destination_page(
    request: Request, name: str, platform: PlatformDep, user: UserDep
) -> HTMLResponse:
    store = delivery_store(platform)
    try:
        described = service.describe(store, name)
        dead = service.dead_letters(store, name, 100) if user.is_admin else []
    except _KNOWN as exc:
        raise HTTPException(404, detail=_error(exc)) from exc
    config = {k: v for k, v in described.items() if k != "health"}
    return render(
        request,
        "destination.html",
        user,
        title=f"Destination {name}",
        name=name,
        config=config,
        config_text=json.dumps(redacted(service.get(store, name)), indent=2),
        health=described["health"],
        dead=dead,
        notice=flow.notice(request),
    )


@router.post("/console/destinations/{name}/replay")
async def replay(request: Request, name: str, platform: PlatformDep, user: AdminDep) -> Response:
    """Queue dead letters again: the ticked ones, or all of them."""
    form = await request.form()
    record_ids = [str(v) for v in form.getlist("record_id")] or None
    try:
        count = service.replay(delivery_store(platform), name, record_ids)
    except _KNOWN as exc:
        raise HTTPException(404, detail=_error(exc)) from exc
    return flow.back(f"/console/destinations/{name}", "replayed", str(count))
