"""uvicorn's httptools protocol, but a response leaves in one write instead of two.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its
body on ``http.response.body``: two ``send`` system calls, and on a keep-alive connection two
TCP segments, each of which wakes the client (its head arrives, it parses it and waits for
the body). On loopback the kernel delivers a segment inside the sender's ``send``, so the
cost of each lands on the server's CPU too. The personalise API answers small responses
computed in one go, one per wake-up at 1,000 requests/s, so the second segment is pure
overhead (its effect alone was not separated from the ranking change it landed with in the
paired runs of docs/benchmarks.md).

:class:`CoalescingTransport` holds what is written during one step of the event loop and
writes it as one buffer at the end of that step (``loop.call_soon``), so the head and the
body of a response computed in one go leave together, and a streamed response still leaves
as it is produced (one step later, microseconds). Everything else is the wrapped transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one event-loop step go out as one ``write``."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is held now (also before closing, and when asked for the buffer size)."""
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # everything else: the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=CoalescingHttpToolsProtocol)``: httptools, one write per step."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
