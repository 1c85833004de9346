"""How the NATS JetStream log maps records onto messages and offsets: pure, no I/O.

One ``append(payloads)`` call (one tracking request) becomes one JetStream message, not
one message per event: a single publisher reached ~14,000 messages/s on the development
machine, far below the file log, while a message per request keeps the per-event cost
to framing. The message body is the records framed exactly as in a segment file
(:mod:`kirana.eventlog.framing`: length, CRC32, payload), so a corrupt body is detected.

Offsets stay plain increasing integers, as the rest of Kirana expects (consumer
positions, the lake's ``txn`` version, quarantine keys): a record's offset is
``stream sequence << INDEX_BITS | index within its message``. Reading "from an offset"
therefore resumes inside a message when a consumer stopped part-way through one, and
``(last sequence + 1) << INDEX_BITS`` is the end. With 20 index bits a message holds up
to 1,048,576 records (far more than fit in NATS's 1 MiB default payload) and sequences
up to 2^43 fit a signed 64-bit offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kirana.eventlog.framing import HEADER_SIZE, encode_frame, scan
from kirana.eventlog.protocol import REDACTED, LogUnavailable

INDEX_BITS = 20
MAX_RECORDS_PER_MESSAGE = 1 << INDEX_BITS
_INDEX_MASK = MAX_RECORDS_PER_MESSAGE - 1

TOMBSTONE = REDACTED
"""What an erased record becomes inside a republished message (consumers skip ``D``)."""


def offset_of(sequence: int, index: int = 0) -> int:
    """The offset of record ``index`` of the message at stream ``sequence``."""
    return (sequence << INDEX_BITS) | index


def split_offset(offset: int) -> tuple[int, int]:
    """``(stream sequence, index within the message)`` of ``offset``."""
    if offset < 0:
        raise ValueError(f"offset {offset} is negative")
    return offset >> INDEX_BITS, offset & _INDEX_MASK


def pack(payloads: Sequence[bytes]) -> bytes:
    """One message body holding ``payloads`` as frames."""
    return b"".join(encode_frame(p) for p in payloads)


def unpack(body: bytes, sequence: int) -> list[bytes]:
    """The records of the message at ``sequence``; a damaged body is an error, never
    a silently shorter list."""
    result = scan(body)
    if result.corrupt or result.valid_end != len(body):
        raise LogUnavailable(
            f"JetStream message {sequence} is corrupt after byte {result.valid_end} of {len(body)}"
        )
    return [payload for _, payload in result.frames]


def chunks(payloads: Sequence[bytes], max_body_bytes: int) -> list[list[bytes]]:
    """Split one append into as few messages as the server's payload limit allows.

    Normally one chunk (a tracking request is at most 500 KB); derived-event appends
    can be larger. Order is kept, so offsets still follow the order of ``payloads``.
    """
    groups: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for payload in payloads:
        framed = HEADER_SIZE + len(payload)
        if framed > max_body_bytes:
            raise ValueError(
                f"a record of {len(payload)} bytes does not fit a JetStream message "
                f"(the server's max_payload allows {max_body_bytes - HEADER_SIZE})"
            )
        if current and (size + framed > max_body_bytes or len(current) == _INDEX_MASK + 1):
            groups.append(current)
            current, size = [], 0
        current.append(payload)
        size += framed
    if current:
        groups.append(current)
    return groups


def redacted(records: Sequence[bytes], matches: Callable[[bytes], bool]) -> tuple[list[bytes], int]:
    """``records`` with every matching, not yet erased record replaced by a tombstone,
    and how many were replaced. The count of records is unchanged, so every other
    record keeps its offset."""
    out: list[bytes] = []
    count = 0
    for record in records:
        if record[:1] != REDACTED and matches(record):
            out.append(TOMBSTONE)
            count += 1
        else:
            out.append(record)
    return out, count
