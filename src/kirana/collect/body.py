"""A request body read chunk by chunk, with the size limit enforced as it streams in.

Reading the whole body before looking at it lets any client, with or without a write
key, make the server hold whatever it sends (``Request.body()`` of a 512 MB POST is
512 MB of memory). Here the limit applies to the bytes received (compressed or not) and
to what they inflate to, checked at every chunk, so the server never holds more than
the limit plus one chunk; a declared ``Content-Length`` above the limit is refused
before anything is read.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable

from kirana.collect.errors import CollectError


def _too_large(limit: int, what: str = "request body") -> CollectError:
    return CollectError(413, "too_large", f"{what} exceeds {limit} bytes; at most {limit} allowed")


def _inflater(content_encoding: str | None):
    """A zlib decompressor for the encoding, None for none; 415 for an unknown one."""
    if not content_encoding or content_encoding.lower() == "identity":
        return None
    encoding = content_encoding.lower()
    if encoding not in ("gzip", "deflate"):
        raise CollectError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip"
        )
    return zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)


async def _once(body: bytes):
    yield body


async def read_body(
    body: bytes | AsyncIterable[bytes],
    content_encoding: str | None,
    limit: int,
    *,
    declared_length: int | None = None,
) -> bytes:
    """The decoded body, or CollectError (413 past ``limit`` before or after inflating,
    400 for a broken or truncated gzip/deflate stream, 415 for another encoding)."""
    if declared_length is not None and declared_length > limit:
        raise CollectError(
            413, "too_large", f"request body is {declared_length} bytes; at most {limit} allowed"
        )
    inflater = _inflater(content_encoding)
    chunks = _once(body) if isinstance(body, bytes) else body
    received = 0
    size = 0
    parts: list[bytes] = []
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit - size + 1)
            except zlib.error as exc:
                raise CollectError(
                    400, "invalid_encoding", f"request body is not valid {content_encoding}: {exc}"
                ) from None
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "request body once decompressed")
        parts.append(chunk)
    if inflater is not None and not inflater.eof:
        raise CollectError(400, "invalid_encoding", f"request body is truncated {content_encoding}")
    return b"".join(parts)
