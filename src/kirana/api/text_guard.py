"""Lone UTF-16 surrogates in a JSON body get a 400 naming the field, not a 500 later.

JSON may escape a lone surrogate (``"\\ud800"``); Python's parser, which FastAPI uses,
turns it into a ``str`` that no UTF-8 encoder will write, so the request fails later,
wherever the value is first stored or hashed (SQLite, the exposure log, a response), as
an unexpected 500. This middleware looks at JSON bodies before any route does: a body
holding a surrogate escape (a byte search first; the parse only then) whose value is not
part of a valid pair is answered ``400 {code: "invalid_text", message}``.

The tracking API is skipped (``skip``): it streams its bodies and judges each event
itself (``kirana.collect``), so one bad event is that event's rejection, not the batch's.
Bodies over :data:`MAX_CHECKED_BYTES` pass unchecked rather than be held.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kirana.collect.values import Path, render_path

MAX_CHECKED_BYTES = 4 * 1024 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def lone_surrogate_path(value: Any) -> Path | None:
    """The path of a string or key in ``value`` holding a lone surrogate, if any."""
    stack: list[tuple[Any, Path]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return path
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, path))
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True  # FastAPI parses a body without a content type as JSON too


class TextGuard:
    """ASGI middleware: answer 400 for JSON bodies with lone surrogates (see module doc)."""

    def __init__(self, app: ASGIApp, skip: Iterable[str] = ()) -> None:
        self.app = app
        self.skip = tuple(skip)  # paths (suffixes) that judge their own bodies as they stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or (self.skip and scope["path"].endswith(self.skip))
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        more = True
        while more and size <= MAX_CHECKED_BYTES:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if not more and size <= MAX_CHECKED_BYTES:
            body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.request")
            path = _lone_surrogate_in(body)
            if path is not None:
                message = (
                    f"`{render_path(path, 'body')}` is not valid Unicode text "
                    "(a lone UTF-16 surrogate escape)"
                )
                response = JSONResponse({"code": "invalid_text", "message": message}, 400)
                await response(scope, receive, send)
                return

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)


def _lone_surrogate_in(body: bytes) -> Path | None:
    if _SURROGATE_ESCAPE.search(body) is None:
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's own parsing answers that
    return lone_surrogate_path(value)
