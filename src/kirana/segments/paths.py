"""Property paths (``total``, ``address.city``, ``products[].category``) in SQL and in Python.

One parsed form serves the compiler (a DuckDB JSON path) and the real-time
evaluator (a dictionary walk), so both read exactly the same value out of a
properties object. The rules mirror DuckDB's ``json_extract``: a key looked up
on anything but an object is missing, and a JSON ``null`` counts as missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

_SEGMENT = re.compile(r"^[A-Za-z0-9_$@-]{1,100}$")

PATH_RULE = (
    "must be a property path: keys of letters, digits, _ $ @ - joined by '.', "
    "with at most one key followed by [] (e.g. total, address.city, products[].category)"
)

MISSING: Any = object()
"""What :func:`lookup` returns for an absent key or a JSON null."""


class PropertyPath(msgspec.Struct, frozen=True):
    """``head`` reaches a value (an array when ``array``); ``tail`` goes into each element."""

    text: str
    head: tuple[str, ...]
    array: bool = False
    tail: tuple[str, ...] = ()

    @property
    def array_prefix(self) -> str | None:
        """``products[]`` for ``products[].category``; None when nothing is unnested."""
        return ".".join(self.head) + "[]" if self.array else None


def parse_path(text: Any) -> PropertyPath:
    """Parse a path, raising ``ValueError(rule)`` when it is malformed."""
    if not isinstance(text, str) or not text:
        raise ValueError(PATH_RULE)
    head: list[str] = []
    tail: list[str] = []
    array = False
    for raw in text.split("."):
        key = raw
        is_array = key.endswith("[]")
        if is_array:
            key = key[:-2]
        if not _SEGMENT.match(key) or (is_array and array):
            raise ValueError(PATH_RULE)
        (tail if array else head).append(key)
        array = array or is_array
    return PropertyPath(text, tuple(head), array, tuple(tail))


def json_path(keys: tuple[str, ...]) -> str:
    """DuckDB JSON path for ``keys`` (every key quoted, so ``-`` and ``$`` are plain)."""
    return "$" + "".join(f'."{k}"' for k in keys)


def lookup(value: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` inside decoded JSON, or :data:`MISSING`."""
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return MISSING if value is None else value


def values(properties: Any, path: PropertyPath) -> Iterator[tuple[int, Any]]:
    """(element index, value) pairs that ``path`` selects; one pair (0, value) without ``[]``.

    Indexes start at 1, as DuckDB's ``WITH ORDINALITY`` does; missing values are
    yielded as :data:`MISSING` so callers can still count the element.
    """
    found = lookup(properties, path.head)
    if not path.array:
        yield 0, found
        return
    if isinstance(found, list):
        for index, element in enumerate(found, start=1):
            yield index, lookup(element, path.tail)
