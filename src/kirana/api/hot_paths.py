"""The few endpoints called thousands of times a second, served ahead of FastAPI's router.

FastAPI (0.165) spends most of a small request's CPU before the handler runs: matching the
path against every included router's routes in turn and solving the declared parameters
(``benchmarks/api_overhead.py``: ~300 µs of CPU for ``/health`` or a 401 from
``/v1/personalize`` through the router, 11-30 µs through this). The tracking API and the personalise
API take only the raw request, so this ASGI middleware dispatches them by exact method and
path to the very handlers the FastAPI routes call, and hands everything else on unchanged.

The FastAPI routes stay registered: they are what ``/openapi.json`` and ``/docs`` describe,
and they serve the same paths under any mount that bypasses this middleware. The middleware
sits inside FastAPI's error handling, so an unexpected exception still becomes a 500; an
``HTTPException`` gets the app's ``{code, message}`` answer through ``http_error``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


class HotPaths:
    """Dispatch ``(method, path)`` pairs straight to their handlers; pass the rest on."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[tuple[str, str], Handler],
        http_error: Callable[[HTTPException], Response],
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.http_error = http_error  # this sits outside FastAPI's HTTPException handling

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"]))
            if handler is not None and not scope.get("root_path"):
                try:
                    response = await handler(Request(scope, receive))
                except HTTPException as exc:
                    response = self.http_error(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
