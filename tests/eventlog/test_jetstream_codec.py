"""The JetStream log's message bodies and offset scheme (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.collect.service import MAX_EVENT_BYTES
from kirana.eventlog.framing import HEADER, MAX_PAYLOAD, scan
from kirana.eventlog.jetstream import safe_url, server_urls
from kirana.eventlog.jetstream_codec import (
    INDEX_BITS,
    MAGIC,
    MAX_RECORDS_PER_MESSAGE,
    decode,
    encode,
    offset_of,
    pack,
    redacted,
    split_offset,
)
from kirana.eventlog.protocol import REDACTED, AppendTooLarge, LogUnavailable

payload_lists = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=60)


@given(st.integers(1, 2**43 - 1), st.integers(0, 2**INDEX_BITS - 1))
def test_offsets_split_back_and_order_like_sequence_then_index(sequence: int, index: int) -> None:
    offset = offset_of(sequence, index)
    assert split_offset(offset) == (sequence, index)
    assert offset < offset_of(sequence + 1) and offset < 2**63
    assert offset_of(sequence, index) >= offset_of(sequence)


def records_of(sizes: list[int], seed: int, repetitive: bool) -> list[bytes]:
    """Records of these sizes: random bytes (incompressible) or JSON-like repeats."""
    rng = random.Random(seed)
    if repetitive:
        return [
            (b'E{"type":"track","n":%d}' % i * (size // 20 + 1))[:size]
            for i, size in enumerate(sizes)
        ]
    return [b"E" + rng.randbytes(size - 1) for size in sizes]


# up to the collector's limits: a 500 KB request of events of up to 32 KB, each 1-4x
# its JSON once normalised
record_sizes = st.lists(st.integers(1, 4 * MAX_EVENT_BYTES), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(record_sizes, st.integers(0, 2**32), st.booleans())
def test_an_append_is_one_body_that_decodes_to_the_same_records_or_is_refused(
    sizes: list[int], seed: int, repetitive: bool
) -> None:
    records = records_of(sizes, seed, repetitive)
    limit = 1024 * 1024 - 512  # NATS's default max_payload less the header room
    try:
        body = encode(records, limit)
    except AppendTooLarge as exc:
        assert "max_payload" in str(exc)
        assert not repetitive and sum(sizes) > limit // 2  # only incompressible bulk
        return
    assert body.startswith(MAGIC) and len(body) <= limit
    assert decode(body, 1) == records


@settings(max_examples=30, deadline=None)
@given(payload_lists)
def test_bodies_written_before_compression_still_decode(payloads: list[bytes]) -> None:
    assert decode(pack(payloads), 1) == payloads  # plain frames: the earlier format


def test_magic_can_never_be_read_as_a_frame_of_the_plain_format() -> None:
    length, _ = HEADER.unpack_from(MAGIC + bytes(4))
    assert length > MAX_PAYLOAD
    assert scan(MAGIC + bytes(64)).frames == []


def test_an_append_that_cannot_be_one_message_is_refused_by_name() -> None:
    incompressible = [random.Random(1).randbytes(3000)]
    with pytest.raises(AppendTooLarge, match=r"max_payload \(1000 bytes"):
        encode(incompressible, 1000)
    with pytest.raises(AppendTooLarge, match="records per append"):
        encode([b"E"] * (MAX_RECORDS_PER_MESSAGE + 1), 10**9)


@pytest.mark.parametrize("compressed", [True, False])
def test_a_damaged_message_is_an_error_not_fewer_records(compressed: bool) -> None:
    records = [b"Eone", b"Etwo"]
    body = encode(records, 10_000) if compressed else pack(records)
    with pytest.raises(LogUnavailable, match="message 7 is corrupt"):
        decode(body[:-1], 7)
    with pytest.raises(LogUnavailable, match="message 7 is corrupt"):
        decode(body[:-1] + bytes([body[-1] ^ 0xFF]), 7)


@given(st.lists(st.sampled_from([b"Eme", b"Eother", b"D", b"Qme"]), max_size=30))
def test_redaction_keeps_every_position_and_counts_only_new_tombstones(
    records: list[bytes],
) -> None:
    out, count = redacted(records, lambda p: p.endswith(b"me"))
    assert len(out) == len(records)
    assert count == sum(r.endswith(b"me") for r in records)
    for before, after in zip(records, out, strict=True):
        assert after == (REDACTED if before.endswith(b"me") else before)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://kirana:s3cret@nats-1:4222", "nats://***@nats-1:4222"),
        ("nats://tok3n@a:4222, nats://u:p%40ss@b:4222", "nats://***@a:4222,nats://***@b:4222"),
    ],
)
def test_server_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert len(server_urls(url)) == shown.count(",") + 1
