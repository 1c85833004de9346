"""The JetStream log's record packing and offset scheme (pure)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirana.eventlog.framing import HEADER_SIZE
from kirana.eventlog.jetstream import safe_url, server_urls
from kirana.eventlog.jetstream_codec import (
    INDEX_BITS,
    chunks,
    offset_of,
    pack,
    redacted,
    split_offset,
    unpack,
)
from kirana.eventlog.protocol import REDACTED, LogUnavailable

payload_lists = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=60)


@given(st.integers(1, 2**43 - 1), st.integers(0, 2**INDEX_BITS - 1))
def test_offsets_split_back_and_order_like_sequence_then_index(sequence: int, index: int) -> None:
    offset = offset_of(sequence, index)
    assert split_offset(offset) == (sequence, index)
    assert offset < offset_of(sequence + 1) and offset < 2**63
    assert offset_of(sequence, index) >= offset_of(sequence)


@given(payload_lists, st.integers(400, 4000))
def test_chunks_keep_order_and_fit_the_servers_payload_limit(
    payloads: list[bytes], limit: int
) -> None:
    groups = chunks(payloads, limit)
    assert [p for g in groups for p in g] == payloads
    assert all(len(pack(g)) <= limit for g in groups)
    # greedy: a group ends only where the next record would not have fitted
    for group, following in itertools.pairwise(groups):
        assert len(pack(group)) + HEADER_SIZE + len(following[0]) > limit
    for group in groups:
        assert unpack(pack(group), 1) == group


def test_a_record_larger_than_a_message_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_payload"):
        chunks([b"x" * 2000], 1000)


def test_a_damaged_message_is_an_error_not_fewer_records() -> None:
    body = pack([b"Eone", b"Etwo"])
    with pytest.raises(LogUnavailable, match="message 7 is corrupt"):
        unpack(body[:-1], 7)
    with pytest.raises(LogUnavailable):
        unpack(body[:-1] + b"X", 7)


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
