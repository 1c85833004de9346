"""Relay an HTTP request unchanged to the first API process over its Unix socket.

Used by the extra API processes (:mod:`kirana.process.replica`) for every request they do
not answer themselves: tracking (the first process owns the event log's writer), the
management API, the docs. Method, path, query, headers and body go through as they came,
streamed both ways; the answer comes back with its status, headers and body as the first
process gave them (compressed bodies stay compressed). Only hop-by-hop headers are dropped
(RFC 9110 §7.6.1), and the ``date``/``server`` headers, which this process's server adds.

If the first process cannot be reached (it is restarting us, or going down), the client
gets a 503 with ``Retry-After`` — the request was not applied, so it is safe to send again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.types import Message, Receive, Scope, Send

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"expect",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
ADDED_BY_SERVER = frozenset({b"date", b"server"})


class Relay:
    """An ASGI app that answers every HTTP request by asking the process at ``uds``."""

    def __init__(self, uds: str, *, timeout: float = 300.0) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=uds),
            base_url="http://kirana-api",
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websockets: Kirana serves none
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        has_body = any(k.lower() in (b"content-length",) for k, _ in headers) or any(
            k.lower() == b"transfer-encoding" for k, _ in scope["headers"]
        )
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request = self._client.build_request(
            scope["method"],
            target.decode("latin-1"),
            headers=headers,
            content=_body(receive) if has_body else None,
        )
        try:
            response = await self._client.send(request, stream=True)
        except ClientDisconnected:  # nobody to answer; the cut-off body was not sent whole
            return
        except httpx.TransportError as exc:
            await _unavailable(send, exc, applied=not isinstance(exc, _NOT_SENT))
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.lower() not in HOP_BY_HOP and k.lower() not in ADDED_BY_SERVER
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":  # never relay half a body as a whole one
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


async def _unavailable(send: Send, exc: Exception, *, applied: bool) -> None:
    outcome = (
        b"the request may have been applied; tracking calls are safe to retry (messageId)"
        if applied
        else b"nothing was applied; retry shortly"
    )
    body = (
        b'{"code":"unavailable","message":"this API process could not relay the request to '
        b"the first one (" + type(exc).__name__.encode() + b"): " + outcome + b'"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
