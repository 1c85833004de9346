"""A structural scan of JSON bytes that tolerates anything inside strings.

msgspec refuses a whole ``/v1/batch`` body when one event in it holds a lone surrogate
or nests deeper than the interpreter's recursion limit, which would fail every good event
beside it. This scan cuts the body into its envelope and one byte span per event, each
then judged alone, without looking inside strings (invalid UTF-8 and bad escapes pass).
It is the slow path, used only when msgspec has refused a body; it costs several times
msgspec's decode of the same body (timed while writing it; no benchmark keeps the figure).
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


def _tokens(data: bytes, pos: int = 0):
    """(start, end, kind, text) per token; kind is ``s`` string, ``p`` punctuation, ``v`` other."""
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

    Values are skipped with Python's C JSON scanner over the body read as Latin-1 (one
    character per byte, so its offsets are the body's; JSON's structure is ASCII): lone
    surrogates and bytes that are not UTF-8 do not stop it. A value it refuses (too deep,
    or broken inside) is skipped by its brackets instead (:func:`_structural_end`), to be
    rejected on its own. Raises NotJSON when the body's structure is broken or it has no
    ``batch`` array at its top level.
    """
    text = data.decode("latin-1")
    try:
        return _split(text, data)
    except IndexError:
        raise NotJSON("the body ends early") from None


def _split(text: str, data: bytes) -> tuple[bytes, list[bytes]]:
    pos = _skip(text, 0)
    if text[pos] != "{":
        raise NotJSON("the body is not a JSON object")
    pos = _skip(text, pos + 1)
    span: tuple[int, int] | None = None
    events: list[bytes] = []
    while text[pos] != "}":
        try:
            key, pos = _SCANNER.raw_decode(text, pos)
        except ValueError:
            raise NotJSON(f"expected a key at {pos}") from None
        pos = _skip(text, pos)
        if not isinstance(key, str) or text[pos] != ":":
            raise NotJSON(f"expected a key and `:` at {pos}")
        pos = _skip(text, pos + 1)
        if key == "batch" and span is None and text[pos] == "[":
            start = pos
            pos = _skip(text, pos + 1)
            while text[pos] != "]":
                end = _value_end(text, data, pos)
                events.append(data[pos:end])
                pos = _after_item(text, end, "]")
            span = (start, pos + 1)
            pos += 1
        else:
            pos = _value_end(text, data, pos)
        pos = _after_item(text, pos, "}")
    if span is None or _skip(text, pos + 1) != len(text):
        raise NotJSON("the body is not an object with a `batch` array")
    return data[: span[0]] + b"[]" + data[span[1] :], events


_SCANNER = json.JSONDecoder(strict=False)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


def _after_item(text: str, pos: int, closer: str) -> int:
    """Past the ``,`` after an item (at the next item), or at the ``closer``."""
    pos = _skip(text, pos)
    if text[pos] == ",":
        pos = _skip(text, pos + 1)
        if text[pos] == closer:
            raise NotJSON(f"a trailing comma at {pos}")
        return pos
    if text[pos] != closer:
        raise NotJSON(f"expected `,` or `{closer}` at {pos}")
    return pos


def _value_end(text: str, data: bytes, pos: int) -> int:
    try:
        return _SCANNER.raw_decode(text, pos)[1]
    except (ValueError, RecursionError):
        return _structural_end(data, pos)


def _structural_end(data: bytes, pos: int) -> int:
    """Where the value starting at ``pos`` ends, by its brackets alone."""
    depth = 0
    for _start, end, kind, text in _tokens(data, pos):
        if kind == "p" and text in (b"{", b"["):
            depth += 1
        elif kind == "p" and text in _CLOSERS:
            depth -= 1
            if depth < 0:
                break
        elif kind == "p" and depth == 0:
            break  # `,` or `:` where a value should be
        if depth == 0:
            return end
    raise NotJSON(f"no complete value at {pos}")


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
