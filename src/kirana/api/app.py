"""The ASGI application: routes, error shapes, and the platform's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from kirana import __version__
from kirana.api.hot_paths import Handler, HotPaths
from kirana.api.relay import Relay
from kirana.api.routes import (
    access,
    admin,
    content,
    personalize,
    privacy,
    profiles,
    segments,
    tracking,
)
from kirana.api.routes import destinations as destination_routes
from kirana.api.routes import experiments as experiment_routes
from kirana.api.routes import models as model_routes
from kirana.api.routes import replication as replication_routes
from kirana.api.routes import syncs as sync_routes
from kirana.audit.middleware import AuditMiddleware
from kirana.runtime import Platform


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error as ``{code, message}`` (a route may raise one with a dict detail)."""
    detail = exc.detail
    if not isinstance(detail, dict):
        detail = {"code": "error", "message": str(detail)}
    return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)


def _health_of(process: int) -> Handler:
    body = b'{"ok":true,"process":%d}' % process

    async def health(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return health


def create_replica_app(platform: Platform, primary_socket: str, process: int) -> Starlette:
    """The app of extra API process ``process``: personalise and ``/health`` answered here,
    every other request relayed to the first API process (:mod:`kirana.process.replica`)."""
    relay = Relay(primary_socket)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await relay.aclose()

    app = Starlette(routes=[Mount("/", app=relay)], lifespan=lifespan)
    app.state.platform = platform
    hot: dict[tuple[str, str], Handler] = {
        ("GET", "/v1/personalize"): personalize.personalize_raw,
        ("GET", "/health"): _health_of(process),
    }
    app.add_middleware(HotPaths, routes=hot, http_error=http_error_response)
    return app


def create_app(platform: Platform, *, manage_lifecycle: bool = True) -> FastAPI:
    """An app serving ``platform``; it starts and closes the platform unless told not to."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            platform.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                platform.close()

    app = FastAPI(
        title="Kirana",
        version=__version__,
        summary="Segment-compatible collection, profiles, pipelines, serving and experiments.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.include_router(tracking.router)
    app.include_router(admin.router)
    app.include_router(access.router)
    app.include_router(profiles.router)
    app.include_router(privacy.router)
    app.include_router(experiment_routes.router)
    app.include_router(content.router)
    app.include_router(personalize.router)
    app.include_router(model_routes.router)
    app.include_router(replication_routes.router)
    app.include_router(segments.router)
    app.include_router(destination_routes.router)
    app.include_router(sync_routes.router)

    @app.get("/health", tags=["status"])
    async def health() -> dict:
        """Liveness: the process is up. ``process`` says which API process answered (0: the
        first, which owns the event log; 1 and up: ``kirana serve --api-processes``)."""
        return {"ok": True, "process": 0}

    hot: dict[tuple[str, str], Handler] = {
        ("POST", path): handler for path, handler in tracking.HANDLERS.items()
    }
    hot[("GET", "/v1/personalize")] = personalize.personalize_raw
    hot[("GET", "/health")] = _health_of(0)
    # inside HotPaths: tracking and personalise never pass through the audit log
    app.add_middleware(AuditMiddleware, store_of=lambda: platform.store)
    app.add_middleware(HotPaths, routes=hot, http_error=http_error_response)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse(
            {
                "code": "invalid_field",
                "message": f"`{field}`: {first.get('msg')}",
                "errors": exc.errors(),
            },
            status_code=422,
        )

    schema = app.openapi()
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(
        {
            "writeKeyBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "Write key as the user name",
            },
            "writeKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Write-Key"},
        }
    )
    return app
