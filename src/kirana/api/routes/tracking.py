"""Segment's HTTP Tracking API: ``/v1/track``, ``/v1/identify``, … ``/v1/batch``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from kirana.collect.schema import IncomingBatch, IncomingEvent
from kirana.collect.service import CollectError, Credentials
from kirana.eventlog.protocol import AppendTooLarge, LogBusy, LogUnavailable

router = APIRouter(prefix="/v1", tags=["tracking"])

_EVENT_SCHEMA = msgspec.json.schema(IncomingEvent)
_BATCH_SCHEMA = msgspec.json.schema(IncomingBatch)
_ACCEPTED = {
    "type": "object",
    "required": ["success", "accepted"],
    "properties": {
        "success": {"type": "boolean"},
        "accepted": {"type": "integer", "description": "Events durably written"},
        "suppressed": {"type": "integer", "description": "Events of erased people, dropped"},
        "rejected": {
            "type": "array",
            "description": "Events refused on their own (the others were accepted)",
            "items": {
                "type": "object",
                "required": ["index", "code", "reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "messageId": {"type": ["string", "null"]},
                    "code": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}
_RESPONSES = {
    200: {
        "description": "Durably accepted (a batch lists any events it rejected)",
        "content": {"application/json": {"schema": _ACCEPTED}},
    },
    400: {"description": "Invalid body or event: `{code, message}` names the field and rule"},
    401: {"description": "Missing or unknown write key"},
    413: {"description": "Event over 32 KB or batch over 500 KB"},
    429: {"description": "Overloaded: retry after `Retry-After` seconds"},
    503: {"description": "The event log cannot write: nothing was accepted"},
}


def _error(status: int, code: str, message: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


async def _ingest(endpoint: str, request: Request) -> Response:
    collector = request.app.state.platform.collector
    headers = request.headers
    credentials = Credentials(headers.get("authorization"), headers.get("x-write-key"))
    declared = headers.get("content-length")
    try:
        result = await collector.ingest(
            endpoint,
            request.stream(),  # read chunk by chunk, after the header credentials
            credentials=credentials,
            content_encoding=headers.get("content-encoding"),
            content_length=int(declared) if declared and declared.isdigit() else None,
        )
    except ClientDisconnect:
        return _error(400, "client_disconnected", "the request body ended before it was complete")
    except CollectError as exc:
        return _error(exc.status, exc.code, exc.message, exc.retry_after)
    except AppendTooLarge as exc:  # retrying the same request cannot help
        return _error(413, "append_too_large", f"{exc}; nothing was accepted, send smaller batches")
    except LogBusy as exc:
        return _error(429, "overloaded", f"{exc}; nothing was accepted, retry shortly", 1)
    except LogUnavailable as exc:
        return _error(503, "log_unavailable", f"{exc}; nothing was accepted, retry later", 5)
    content: dict = {"success": True, "accepted": result.accepted}
    if result.suppressed:
        content["suppressed"] = result.suppressed
    if result.rejected:
        content["rejected"] = [
            {"index": r.index, "messageId": r.message_id, "code": r.code, "reason": r.reason}
            for r in result.rejected
        ]
    return Response(msgspec.json.encode(content), media_type="application/json")


#: ``POST`` path -> handler, for :class:`kirana.api.hot_paths.HotPaths`
HANDLERS: dict[str, Callable[[Request], Awaitable[Response]]] = {}


def _add(endpoint: str, schema: dict, summary: str) -> None:
    async def handler(request: Request) -> Response:
        return await _ingest(endpoint, request)

    handler.__name__ = f"ingest_{endpoint}"
    HANDLERS[f"/v1/{endpoint}"] = handler
    router.add_api_route(
        f"/{endpoint}",
        handler,
        methods=["POST"],
        summary=summary,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "security": [{"writeKeyBasic": []}, {"writeKeyHeader": []}],
        },
    )


for _name in ("track", "identify", "page", "screen", "group", "alias"):
    _add(_name, _EVENT_SCHEMA, f"Record one `{_name}` event")
_add("batch", _BATCH_SCHEMA, "Record a batch of events (each accepted or rejected on its own)")
_add("import", _BATCH_SCHEMA, "Import historical events (same as batch)")
