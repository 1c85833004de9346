"""Writes the audit log for every management change, in one place.

An ASGI middleware around the FastAPI app: for a ``POST``, ``PUT``, ``PATCH`` or
``DELETE`` whose route demanded an admin token (:func:`kirana.api.deps._admin` marks the
request with the caller's token, whether it was admitted or refused), it records who
(token id and name), what (method and route template, the path's parameters as the
target, the redacted body and query) and the status, when the response starts: the entry
is on disk before the caller hears the change was made. Routes need no code of their own,
so a new management route is audited by being one. Tracking and personalise requests are
answered ahead of it (:mod:`kirana.api.hot_paths`) or carry no admin token: never audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kirana.audit.redact import redact_text, summarise_body, summarise_query
from kirana.store.protocol import OperationalStore, Token

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The request state key the admin dependency sets to the caller's token.
ACTOR_KEY = "kirana_admin_actor"
#: Bodies are kept for the summary up to this size (bigger ones: size and type only).
MAX_BODY = 64 * 1024


class AuditMiddleware:
    """Record admin changes in ``store_of()``'s audit log (see the module docstring)."""

    def __init__(self, app: ASGIApp, store_of: Callable[[], OperationalStore]) -> None:
        self.app = app
        self.store_of = store_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        truncated = False

        async def receive_and_keep() -> Message:
            nonlocal truncated
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if len(body) + len(chunk) <= MAX_BODY:
                    body.extend(chunk)
                else:
                    truncated = True
            return message

        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            actor = scope.get("state", {}).get(ACTOR_KEY)
            if actor is not None:
                entry = _entry(scope, actor, bytes(body), truncated, status)
                await anyio.to_thread.run_sync(self._record, entry)

        async def send_after_recording(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_after_recording)
        except Exception:  # a crash half-way may have changed something: say who tried
            if not recorded:
                await record(500)
            raise

    def _record(self, entry: dict[str, Any]) -> None:
        try:
            self.store_of().record_audit(**entry)
        except Exception:  # the change is made; say loudly that its record is missing
            log.exception("could not write the audit log entry for %s", entry["action"])


def _entry(scope: Scope, actor: Token, body: bytes, truncated: bool, status: int) -> dict[str, Any]:
    route = scope.get("route")
    template = getattr(route, "path", None) or scope["path"]
    params = scope.get("path_params") or {}
    headers = dict(scope.get("headers") or [])
    content_type = headers.get(b"content-type", b"").decode("latin-1") or None
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    summary: dict[str, Any] = {}
    if params:
        summary["params"] = {k: redact_text(str(v)) for k, v in params.items()}
    if query:
        summary["query"] = summarise_query(query)
    described = summarise_body(body, content_type, truncated)
    if described is not None:
        summary["body"] = described
    return {
        "actor_id": actor.id,
        "actor_name": actor.name,
        "action": f"{scope['method']} {template}",
        "target": redact_text("/".join(str(v) for v in params.values())),
        "summary": summary,
        "status": status,
    }
