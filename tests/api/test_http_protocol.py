"""One write per response: the coalescing transport, and a real uvicorn server using it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from kirana.api.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:  # type: ignore[no-untyped-def, override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_in_one_step_leave_together_and_close_flushes_first() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], int, bool]:
        inner = RecordingTransport()
        t = CoalescingTransport(inner, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.write(bytearray(b"body"))
        held = t.get_write_buffer_size()
        assert inner.writes == []  # nothing yet: the step is not over
        await asyncio.sleep(0)
        after_step = list(inner.writes)
        t.write(b"last")
        t.close()  # flushes before closing
        return after_step, inner.writes, held, inner.closed

    after_step, writes, held, closed = asyncio.run(scenario())
    assert after_step == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"last"]
    assert held == len(b"HTTP/1.1 200 OK\r\n\r\nbody") and closed


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b"x" * 5000
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_a_real_server_behind_it_answers_keep_alive_requests_whole() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", http=CoalescingHttpToolsProtocol, loop="uvloop"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port)) as client:
            for _ in range(3):  # keep-alive: each answer whole, the next request after it
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while len(data) < 5000 or b"\r\n\r\n" not in data:
                    data += client.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    if len(body) >= 5000:
                        break
                assert head.startswith(b"HTTP/1.1 200")
                assert body == b"x" * 5000  # all of it, and nothing of another answer
    finally:
        server.should_exit = True
        thread.join(10)
