"""Request/response calls in both directions over one multiprocessing pipe.

The API process and the consumer worker each hold one end. Either side can
``call`` a named handler on the other and wait for its answer; a reader
thread per side delivers answers to their callers and runs incoming requests
on a small thread pool (so a slow handler never holds up answers).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Any], Any]

#: Calls answered on the reader thread itself: quick, and never to wait behind slow ones.
INLINE = frozenset({"stop", "status", "ping", "ready"})


class ChannelClosed(RuntimeError):
    """The other process has gone (exited, crashed or closed its end)."""


class Channel:
    """One end of a pipe between the API process and the worker."""

    def __init__(self, conn: Connection, handlers: dict[str, Handler], *, name: str) -> None:
        self._conn = conn
        self._handlers = handlers
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"{name}-rpc")
        self._reader = threading.Thread(target=self._read, name=f"{name}-channel", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed.wait(timeout)

    def call(self, kind: str, payload: Any = None, timeout: float | None = 60.0) -> Any:
        """Run ``kind`` on the other side and return its result (or raise its error)."""
        future: Future = Future()
        call_id = next(self._ids)
        with self._pending_lock:  # against the reader failing every pending call at EOF
            if self._closed.is_set():
                raise ChannelClosed(f"cannot call {kind!r}: the other process has gone")
            self._pending[call_id] = future
        try:
            self._send(("call", call_id, kind, payload))
        except (OSError, ValueError) as exc:
            self._pending.pop(call_id, None)
            raise ChannelClosed(f"cannot call {kind!r}: {exc}") from exc
        try:
            return future.result(timeout)
        finally:
            self._pending.pop(call_id, None)

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _read(self) -> None:
        try:
            while True:
                message = self._conn.recv()
                if message[0] == "call":
                    _, call_id, kind, payload = message
                    if kind in INLINE:  # never queued behind slow calls (refresh)
                        self._serve(call_id, kind, payload)
                    else:
                        self._pool.submit(self._serve, call_id, kind, payload)
                else:
                    _, call_id, ok, value = message
                    future = self._pending.pop(call_id, None)
                    if future is not None:
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(RuntimeError(value))
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("the channel to the other process broke")
        finally:
            with self._pending_lock:
                self._closed.set()
                pending = list(self._pending.values())
                self._pending.clear()
            for future in pending:
                if not future.done():
                    future.set_exception(ChannelClosed("the other process has gone"))

    def _serve(self, call_id: int, kind: str, payload: Any) -> None:
        try:
            handler = self._handlers[kind]
            reply = ("reply", call_id, True, handler(payload))
        except Exception as exc:
            log.exception("handling %r from the other process failed", kind)
            reply = ("reply", call_id, False, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError, ValueError):
            self._send(reply)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
