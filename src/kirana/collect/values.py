"""Limits on an event's values, so that whatever the collector accepts every consumer can hold.

An accepted event is loaded into the lake (DuckDB, Parquet), profiles (SQLite or
PostgreSQL), destinations (PostgreSQL, Redis, webhooks) and the warehouse; one value
none of them can store would wedge that consumer on the event forever. So the
collector rejects, with the field named, what one of them cannot hold:

* **text that is not Unicode**: a lone UTF-16 surrogate (JSON ``"\\ud800"``) or bytes
  that are not UTF-8; no UTF-8 encoder will write it back out;
* **NUL** (U+0000) anywhere in text, keys included: PostgreSQL ``text`` and ``jsonb``
  refuse it;
* **integers beyond signed 64 bits** and numbers beyond a double: DuckDB ``BIGINT``,
  Parquet ``INT64`` and PostgreSQL ``bigint`` stop there;
* **nesting deeper than** :data:`MAX_NESTING_DEPTH` objects and arrays, counting the event
  itself: recursive JSON encoders and decoders downstream have a depth limit.

The check walks the decoded values only when a cheap scan of the raw bytes says one of
these could be present (:func:`may_break_limits`), so ordinary events pay a few byte
searches in C.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from kirana.collect.normalize import InvalidEvent

MAX_NESTING_DEPTH = 64
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# digits -> "0", every other byte -> " ": a run of 19 zeros is 19 digits in a row (int64's
# largest has 19); translate and ``in`` run in C, far faster than re's ``\d{19}`` here (timed once)
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SHOWN_KEY_CHARS = 40
_SHOWN_DEPTH = 4

Path = tuple[str | int, ...]


def may_break_limits(raw: bytes | memoryview) -> bool:
    """False when ``raw`` surely holds no NUL, no integer over 64 bits and no deep nesting."""
    if not isinstance(raw, bytes):
        raw = bytes(raw)  # msgspec.Raw: a buffer without ``in`` or ``count``
    return (
        b"\\u0000" in raw
        or _LONG_DIGIT_RUN in raw.translate(_DIGITS_AS_ZEROS)
        or raw.count(b"{") + raw.count(b"[") > MAX_NESTING_DEPTH
    )


def render_path(path: Path, root: str = "$") -> str:
    """``$.properties.items[2]["odd key"]``: keys shortened and made printable."""
    parts = [root]
    for step in path[:_SHOWN_DEPTH] if len(path) > _SHOWN_DEPTH + 1 else path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
            continue
        key = step.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(key) > _SHOWN_KEY_CHARS:
            key = key[:_SHOWN_KEY_CHARS] + "…"
        parts.append(f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key)}]")
    if len(path) > _SHOWN_DEPTH + 1:
        parts.append(f"…({len(path) - _SHOWN_DEPTH} more levels)")
    return "".join(parts)


def too_deep(path: Path, root: str = "$") -> InvalidEvent:
    return InvalidEvent(
        "too_deep",
        f"`{render_path(path, root)}` nests objects and arrays deeper than "
        f"{MAX_NESTING_DEPTH} levels (counting the event itself)",
    )


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000), which text may not hold"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (a lone UTF-16 surrogate or bytes that are not UTF-8)"
    return None


def _number_problem(number: int | float) -> str | None:
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        if INT64_MIN <= number <= INT64_MAX:
            return None
        digits = str(number)
        shown = digits if len(digits) <= 24 else f"{digits[:20]}… ({len(digits)} digits)"
        return f"is {shown}, beyond a signed 64-bit integer ({INT64_MIN}..{INT64_MAX})"
    if math.isinf(number):
        return "is beyond the range of a 64-bit floating-point number"
    return None


def find_violation(value: Any, root: str = "$") -> InvalidEvent | None:
    """A value in ``value`` (a decoded event) that breaks a limit, as a rejection, or None."""
    stack: list[tuple[Any, Path, int]] = [(value, (), 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_NESTING_DEPTH:
                return too_deep(path, root)
            for key, child in item.items():
                problem = _text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return InvalidEvent(
                        "invalid_text", f"a key in `{render_path(path, root)}` {problem}"
                    )
                stack.append((child, (*path, key), depth + 1))
        elif isinstance(item, list):
            if depth > MAX_NESTING_DEPTH:
                return too_deep(path, root)
            stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem is not None:
                return InvalidEvent("invalid_text", f"`{render_path(path, root)}` {problem}")
        elif isinstance(item, int | float):
            problem = _number_problem(item)
            if problem is not None:
                return InvalidEvent("number_out_of_range", f"`{render_path(path, root)}` {problem}")
    return None


def explain_undecodable(raw: bytes, root: str = "$") -> InvalidEvent | None:
    """Why msgspec refused ``raw``, if it is a broken value rather than broken JSON.

    msgspec stops at a lone surrogate, a byte that is not UTF-8 or a raw control character
    (NUL) in a string without naming the field; Python's own parser, not strict, accepts
    all three (bad bytes as surrogate code points), so the walk can name it. None when
    ``raw`` is not JSON even so.
    """
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"), strict=False)
    except (ValueError, RecursionError):
        return None
    return find_violation(value, root)
