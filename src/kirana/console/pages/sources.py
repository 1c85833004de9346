"""Sources: create, rotate the write key (shown once), SDK setup, the live event debugger."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import debugger, flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import render
from kirana.runtime import Platform
from kirana.store.protocol import AlreadyExists, NotFound, Source

router = APIRouter()

OVERLAP_CHOICES = {"0": "at once", "3600": "1 hour", "86400": "24 hours", "604800": "7 days"}


def _source(platform: Platform, name: str) -> Source:
    try:
        return platform.store.source_by_name(name)
    except NotFound as exc:
        raise HTTPException(404, detail={"code": "not_found", "message": str(exc)}) from exc


def _list(request: Request, platform: Platform, user, status: int = 200, **extra) -> HTMLResponse:
    return render(
        request,
        "sources.html",
        user,
        status,
        title="Sources",
        sources=platform.store.list_sources(),
        notice=flow.notice(request),
        **extra,
    )


@router.get("/console/sources", response_class=HTMLResponse)
def sources_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    return _list(request, platform, user)


@router.post("/console/sources", response_class=HTMLResponse)
def create_source(
    request: Request, platform: PlatformDep, user: AdminDep, name: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Create a source and show its write key, this once."""
    try:
        source, key = platform.store.create_source(name.strip())
    except AlreadyExists as exc:
        error = {"code": "already_exists", "message": f"`name`: {exc}"}
        return _list(request, platform, user, 409, error=error, name=name)
    except ValueError as exc:
        error = {"code": "invalid_field", "message": f"`name`: {exc}"}
        return _list(request, platform, user, 422, error=error, name=name)
    return _detail(request, platform, user, source, new_key=key)


def _detail(request: Request, platform: Platform, user, source: Source, **extra) -> HTMLResponse:
    base = str(request.base_url).rstrip("/")
    return render(
        request,
        "source.html",
        user,
        title=f"Source {source.name}",
        source=source,
        base_url=base,
        overlaps=OVERLAP_CHOICES,
        notice=flow.notice(request),
        **extra,
    )


@router.get("/console/sources/{name}", response_class=HTMLResponse)
def source_page(request: Request, name: str, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    return _detail(request, platform, user, _source(platform, name))


@router.post("/console/sources/{name}/rotate-key", response_class=HTMLResponse)
def rotate_key(
    request: Request,
    name: str,
    platform: PlatformDep,
    user: AdminDep,
    overlap_seconds: Annotated[str, Form()] = "86400",
) -> HTMLResponse:
    """A new write key, shown once; the old ones keep working for the chosen overlap."""
    if overlap_seconds not in OVERLAP_CHOICES:
        error = {
            "code": "invalid_field",
            "message": f"`overlap_seconds` must be one of {', '.join(OVERLAP_CHOICES)}",
        }
        return _detail(request, platform, user, _source(platform, name), error=error)
    try:
        source, key = platform.store.rotate_write_key(name, timedelta(seconds=int(overlap_seconds)))
    except NotFound as exc:
        raise HTTPException(404, detail={"code": "not_found", "message": str(exc)}) from exc
    return _detail(request, platform, user, source, new_key=key)


@router.post("/console/sources/{name}/disable")
def disable_source(name: str, platform: PlatformDep, user: AdminDep) -> Response:
    """Refuse the source's events (403 `source_disabled`, nothing stored) until enabled."""
    return _set_enabled(platform, name, False)


@router.post("/console/sources/{name}/enable")
def enable_source(name: str, platform: PlatformDep, user: AdminDep) -> Response:
    return _set_enabled(platform, name, True)


def _set_enabled(platform: Platform, name: str, enabled: bool) -> Response:
    try:
        platform.store.set_source_enabled(name, enabled)
    except NotFound as exc:
        raise HTTPException(404, detail={"code": "not_found", "message": str(exc)}) from exc
    return flow.back(
        f"/console/sources/{name}", "source_enabled" if enabled else "source_disabled", name
    )


@router.get("/console/sources/{name}/live")
async def live_events(
    name: str, platform: PlatformDep, user: UserDep, after: str | None = None
) -> JSONResponse:
    """The debugger's feed: rows after the cursor (JSON for ``console.js``)."""
    source = _source(platform, name)
    cursor = debugger.parse_cursor(after)
    if after is not None and cursor is None:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_field",
                "message": "`after` must be the cursor a previous answer gave",
            },
        )
    data = await run_in_threadpool(
        debugger.latest, platform.store, platform.settings.lake_dir, source.id, cursor
    )
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/console/sources/{name}/debugger", response_class=HTMLResponse)
async def debugger_page(
    request: Request, name: str, platform: PlatformDep, user: UserDep
) -> HTMLResponse:
    source = _source(platform, name)
    data = await run_in_threadpool(
        debugger.latest, platform.store, platform.settings.lake_dir, source.id, None
    )
    return render(
        request, "debugger.html", user, title=f"Debugger · {source.name}", source=source, **data
    )
