"""A structural scan of JSON bytes that tolerates anything inside strings.

msgspec refuses a whole ``/v1/batch`` body when one event in it holds a lone surrogate
or nests deeper than the interpreter's recursion limit, which would fail every good event
beside it. This scanner only follows strings, brackets, colons and commas (what is inside
a string is never looked at, so invalid UTF-8 and bad escapes pass), which is enough to
cut the body into its envelope and one byte span per event, each then judged alone. It
is the slow path (a Python loop over tokens), used only when msgspec has refused a body.
"""

from __future__ import annotations

import json
import re

from kirana.collect.values import Path

_TOKEN = re.compile(rb'\s*(?:("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.S)
_TRAILING_SPACE = re.compile(rb"\s*")
_CLOSERS = {b"}": b"{", b"]": b"["}


class NotJSON(ValueError):
    """The bytes do not even have JSON's structure."""


def _tokens(data: bytes):
    """(start, end, kind, text) per token; kind is ``s`` string, ``p`` punctuation, ``v`` other."""
    pos = 0
    size = len(data)
    while True:
        match = _TOKEN.match(data, pos)
        if match is None:
            if _TRAILING_SPACE.match(data, pos).end() == size:  # type: ignore[union-attr]
                return
            raise NotJSON(f"unexpected byte at {pos}")
        group = match.lastindex
        start, end = match.span(group)
        yield start, end, "spv"[group - 1], data[start:end]
        pos = match.end()


def split_batch(data: bytes) -> tuple[bytes, list[bytes]]:
    """``(envelope with "batch": [], [event bytes, ...])`` of a ``/v1/batch`` body.

    Raises NotJSON when the body's structure is broken or it has no ``batch`` array at
    its top level.
    """
    stack: list[bytes] = []
    expect_key = False
    key: bytes | None = None
    batch_span: list[int] = []
    events: list[bytes] = []
    event_start = -1
    for start, end, kind, text in _tokens(data):
        depth = len(stack)
        in_batch = len(batch_span) == 1
        if in_batch and depth == 2 and event_start < 0 and text not in (b",", b"]"):
            event_start = start
        if kind == "p" and text in (b"{", b"["):
            if depth == 1 and key == b'"batch"' and text == b"[" and not batch_span:
                batch_span.append(start)
            stack.append(text)
            expect_key = text == b"{"
            continue
        if kind == "p" and text in _CLOSERS:
            if not stack or stack.pop() != _CLOSERS[text]:
                raise NotJSON(f"unbalanced {text.decode()} at {start}")
            if in_batch and len(stack) == 1:
                if event_start >= 0:
                    events.append(data[event_start:start].rstrip())
                batch_span.append(end)
                event_start = -1
            continue
        if kind == "p" and text == b",":
            if in_batch and depth == 2:
                if event_start < 0:
                    raise NotJSON(f"empty element in `batch` at {start}")
                events.append(data[event_start:start].rstrip())
                event_start = -1
            expect_key = stack[-1:] == [b"{"]
            continue
        if kind == "s" and expect_key and depth == 1:
            key = text
        if kind != "p" or text != b":":
            expect_key = False
    if stack or len(batch_span) != 2:
        raise NotJSON("the body is not an object with a `batch` array")
    return data[: batch_span[0]] + b"[]" + data[batch_span[1] :], events


def path_past_depth(data: bytes, limit: int) -> Path:
    """The path of the first object or array in ``data`` nested deeper than ``limit``."""
    path: list[str | int] = []
    kinds: list[bytes] = []
    expect_key = False
    for _start, _end, kind, text in _tokens(data):
        if kind == "p" and text in (b"{", b"["):
            if len(kinds) >= limit:
                return tuple(path)
            kinds.append(text)
            path.append(0 if text == b"[" else "")
            expect_key = text == b"{"
        elif kind == "p" and text in _CLOSERS:
            if kinds:
                kinds.pop()
                path.pop()
        elif kind == "p" and text == b",":
            if kinds and kinds[-1] == b"[":
                path[-1] = int(path[-1]) + 1
            expect_key = kinds[-1:] == [b"{"]
        elif kind == "s" and expect_key:
            path[-1] = _key_text(text)
            expect_key = False
    return tuple(path)


def _key_text(token: bytes) -> str:
    try:
        return json.loads(token.decode("utf-8", "surrogateescape"))
    except ValueError:
        return token[1:-1].decode("utf-8", "replace")
