"""The ASGI application: routes, error shapes, and the platform's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import Mount

from kirana import __version__
from kirana.api.errors import http_error_response, install_error_handlers, internal_error
from kirana.api.hot_paths import Handler, HotPaths
from kirana.api.input_limits import storable_input
from kirana.api.openapi import install_openapi
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
from kirana.api.text_guard import TextGuard
from kirana.audit.middleware import AuditMiddleware
from kirana.console.assets import install_offline_docs
from kirana.console.router import router as console_router
from kirana.runtime import Platform

__all__ = ["create_app", "create_replica_app", "http_error_response"]


class Health(BaseModel):
    ok: bool
    process: int = Field(
        description="Which API process answered (0: the first, which owns the event log; "
        "1 and up: `kirana serve --api-processes`)"
    )


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

    app = Starlette(
        routes=[Mount("/", app=relay)],
        lifespan=lifespan,
        exception_handlers={Exception: internal_error},
    )
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
        docs_url=None,  # /docs and /redoc from local files: kirana.console.assets
        redoc_url=None,
        dependencies=[Depends(storable_input)],  # no NUL, huge integers… into any store
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
    app.include_router(console_router)
    install_offline_docs(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console", 307)

    @app.get("/health", tags=["status"], response_model=Health)
    async def health() -> Health:
        """Liveness: the process is up. ``process`` says which API process answered (0: the
        first, which owns the event log; 1 and up: ``kirana serve --api-processes``)."""
        return Health(ok=True, process=0)

    hot: dict[tuple[str, str], Handler] = {
        ("POST", path): handler for path, handler in tracking.HANDLERS.items()
    }
    hot[("GET", "/v1/personalize")] = personalize.personalize_raw
    hot[("GET", "/health")] = _health_of(0)
    # lone surrogates in JSON bodies: 400, not a 500 later (tracking judges its own)
    app.add_middleware(TextGuard, skip=tracking.HANDLERS)
    # inside HotPaths: tracking and personalise never pass through the audit log
    app.add_middleware(AuditMiddleware, store_of=lambda: platform.store)
    app.add_middleware(HotPaths, routes=hot, http_error=http_error_response)

    install_error_handlers(app)
    install_openapi(app)
    app.openapi()  # built now: a route that cannot be described fails at start, not later
    return app
