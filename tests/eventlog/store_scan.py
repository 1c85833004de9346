"""Grep a log's store files for erased values, compressed JetStream bodies included.

JetStream messages are zlib-compressed (:mod:`kirana.eventlog.jetstream_codec`), so a
plain byte search of the server's files would pass whether or not a value was erased.
Every ``MAGIC`` in a file starts a candidate body; whatever decompresses from there is
searched too, so an erasure test fails when any stored copy, compressed or not, remains.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from kirana.eventlog.jetstream_codec import MAGIC


def readable_bytes(data: bytes) -> Iterator[bytes]:
    """``data`` itself, then the decompressed text of every compressed body in it."""
    yield data
    position = data.find(MAGIC)
    while position != -1:
        yield _inflated(data, position + len(MAGIC))
        position = data.find(MAGIC, position + 1)


def _inflated(data: bytes, start: int, step: int = 4096) -> bytes:
    """What decompresses from ``start``, fed in steps so that a damaged or cut-off body
    still yields its readable beginning (a chance match of ``MAGIC`` yields little)."""
    inflater = zlib.decompressobj()
    out = []
    for at in range(start, len(data), step):
        try:
            out.append(inflater.decompress(data[at : at + step]))
        except zlib.error:
            break
        if inflater.eof:
            break
    return b"".join(out)


def files_containing(directory: Path, needle: bytes) -> list[Path]:
    """Files under ``directory`` holding ``needle``, in plain or in a compressed body."""
    return [
        path
        for path in sorted(directory.rglob("*"))
        if path.is_file() and any(needle in text for text in readable_bytes(path.read_bytes()))
    ]


def occurrences(root: Path, needles: list[bytes]) -> list[str]:
    """``path: needle`` for every needle found under ``root`` (as the privacy suite's)."""
    return [
        f"{path.relative_to(root)}: {needle!r}"
        for needle in needles
        for path in files_containing(root, needle)
    ]
