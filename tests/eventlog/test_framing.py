"""Property tests for record framing: round trip, torn tails, corruption."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirana.eventlog.framing import HEADER_SIZE, encode_frame, scan

payloads = st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=30)


@given(payloads, st.integers(min_value=0, max_value=2**40))
def test_frames_round_trip_with_offsets(items: list[bytes], base: int) -> None:
    data = b"".join(encode_frame(p) for p in items)
    result = scan(data, base=base)
    assert [p for _, p in result.frames] == items
    assert result.valid_end == len(data)
    assert not result.corrupt
    expected_offsets, pos = [], base
    for p in items:
        expected_offsets.append(pos)
        pos += HEADER_SIZE + len(p)
    assert [o for o, _ in result.frames] == expected_offsets


@given(payloads.filter(bool), st.data())
def test_torn_tail_is_cut_at_the_last_whole_frame(items: list[bytes], data: st.DataObject) -> None:
    frames = [encode_frame(p) for p in items]
    whole = b"".join(frames[:-1])
    cut = data.draw(st.integers(min_value=0, max_value=len(frames[-1]) - 1))
    result = scan(whole + frames[-1][:cut])
    assert [p for _, p in result.frames] == items[:-1]
    assert result.valid_end == len(whole)


@given(payloads.filter(bool), st.data())
def test_any_flipped_bit_stops_the_scan_before_the_damaged_frame(
    items: list[bytes], data: st.DataObject
) -> None:
    frames = [encode_frame(p) for p in items]
    blob = bytearray(b"".join(frames))
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    blob[position] ^= 1 << bit
    result = scan(bytes(blob))
    # every frame returned lies wholly before the damage and is intact
    damaged_frame, start = 0, 0
    for i, f in enumerate(frames):
        if start <= position < start + len(f):
            damaged_frame = i
            break
        start += len(f)
    assert [p for _, p in result.frames] == items[:damaged_frame]
    assert result.valid_end == start


@given(payloads, st.integers(min_value=1, max_value=64))
def test_zero_filled_tail_is_end_of_data_not_a_record(items: list[bytes], zeros: int) -> None:
    data = b"".join(encode_frame(p) for p in items)
    result = scan(data + bytes(zeros))
    assert [p for _, p in result.frames] == items
    assert result.valid_end == len(data)
    assert not result.corrupt


def test_empty_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        encode_frame(b"")
