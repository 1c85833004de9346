"""The relay of the extra API processes: requests reach the first process as they came.

A real uvicorn server on a Unix socket stands in for the first process and echoes what it
got; the relay is called as an ASGI app, as the extra process's server calls it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from kirana.api.relay import Relay

RECEIVED: list[bytes] = []


async def _echo(request: Request) -> JSONResponse:
    RECEIVED.append(await request.body())
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": (await request.body()).decode(),
        },
        status_code=201,
        headers={"x-answer": "yes"},
    )


async def _stream(request: Request) -> StreamingResponse:
    async def chunks():
        for i in range(3):
            yield f"part{i};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


def _serve(path: str) -> uvicorn.Server:
    app = Starlette(
        routes=[
            Route("/stream", _stream),
            Route("/{rest:path}", _echo, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app, uds=path, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the echo server did not start"
        time.sleep(0.02)
    return server


def _scope(method: str, path: str, query: bytes, headers: list) -> dict:
    """An HTTP scope as the extra API process's server hands it to the relay."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("10.0.0.1", 5),
        "server": ("127.0.0.1", 80),
    }


async def _call(app, method: str, path: str, query: bytes, headers, body: bytes):
    chunks = [body[:3], body[3:]]
    scope = _scope(method, path, query, headers)

    async def receive() -> dict:  # the body in two pieces, as a slow client sends it
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0], b"".join(m.get("body", b"") for m in sent[1:])


def test_relay_passes_requests_and_answers_through(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    server = _serve(path)
    relay = Relay(path)
    body = b'{"batch": [1, 2, 3]}'
    headers = [
        (b"host", b"api.example"),
        (b"x-write-key", b"k1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
    ]

    async def run():
        try:
            echoed = await _call(relay, "POST", "/v1/batch", b"a=1&b=%20x", headers, body)
            streamed = await _call(relay, "GET", "/stream", b"", [(b"host", b"h")], b"")
            return echoed, streamed
        finally:
            await relay.aclose()

    (start, payload), (stream_start, stream_body) = asyncio.run(run())
    server.should_exit = True
    assert start["status"] == 201
    answer_headers = dict(start["headers"])
    assert answer_headers[b"x-answer"] == b"yes"
    assert b"date" not in answer_headers and b"server" not in answer_headers  # ours add them
    got = json.loads(payload)
    assert (got["method"], got["path"], got["query"], got["body"]) == (
        "POST",
        "/v1/batch",
        "a=1&b=%20x",
        body.decode(),
    )
    sent = dict(got["headers"])
    assert sent["host"] == "api.example" and sent["x-write-key"] == "k1"
    assert sent["content-length"] == str(len(body))
    assert "keep-alive" not in sent  # hop-by-hop: not for the next hop
    assert stream_start["status"] == 200 and stream_body == b"part0;part1;part2;"


def test_relay_says_503_and_nothing_applied_when_the_first_process_is_gone(
    tmp_path: Path,
) -> None:
    relay = Relay(str(tmp_path / "missing.sock"))

    async def run():
        try:
            return await _call(relay, "POST", "/v1/track", b"", [(b"host", b"h")], b"{}")
        finally:
            await relay.aclose()

    start, payload = asyncio.run(run())
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == b"1"
    answer = json.loads(payload)
    assert answer["code"] == "unavailable" and "nothing was applied" in answer["message"]


def test_a_client_gone_mid_body_is_not_relayed_as_a_whole_request(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    server = _serve(path)
    relay = Relay(path)
    RECEIVED.clear()
    messages = [
        {"type": "http.request", "body": b'{"batch": [', "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = _scope("POST", "/v1/batch", b"", [(b"host", b"h"), (b"transfer-encoding", b"chunked")])
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def run():
        try:
            await relay(scope, receive, send)
            await asyncio.sleep(0.2)  # what the first process would have got by now
        finally:
            await relay.aclose()

    asyncio.run(run())
    server.should_exit = True
    assert sent == [] and RECEIVED == [], (sent, RECEIVED)
