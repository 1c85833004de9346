"""Each hostile event is its own rejection, the same through a single-event endpoint and a
batch, and never takes a valid neighbour down with it (issue 15, without HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.collect.jsonscan import NotJSON, split_batch
from kirana.collect.judge import accept, decode_batch, decode_event
from kirana.collect.normalize import InvalidEvent
from kirana.collect.schema import batch_decoder
from kirana.collect.values import MAX_NESTING_DEPTH, find_violation
from tests.collect.hostile import SAFE_TEXT, SAFE_VALUES, hostile_event, valid_event

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def judge(raw: bytes, where: str = "$", defaults=None) -> dict:
    event = decode_event(raw, where)
    kwargs = {"defaults": defaults} if defaults is not None else {}
    return accept(event, raw, received_at=NOW, source_id="s", where=where, **kwargs)


def rejection(raw: bytes, where: str = "$") -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        judge(raw, where)
    return caught.value


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_hostile_event_is_rejected_with_its_rule_and_field(data) -> None:
    hostile = data.draw(hostile_event("m-1"))
    single = rejection(hostile.raw)
    assert single.code == hostile.code, (hostile, single.message)
    assert f"$.{hostile.field}" in single.message or f"`{hostile.field}`" in single.message
    msgspec.json.encode(single.message)  # printable: goes to the log and the caller as is


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    good=st.lists(st.dictionaries(SAFE_TEXT, SAFE_VALUES, max_size=3), max_size=4),
)
def test_a_batch_keeps_its_good_events_and_rejects_each_hostile_one_alike(data, good) -> None:
    hostiles = data.draw(st.lists(st.builds(lambda: None), min_size=1, max_size=3))
    hostiles = [data.draw(hostile_event(f"h-{i}")) for i in range(len(hostiles))]
    items: list[tuple[str, object]] = [("good", props) for props in good]
    items += [("bad", h) for h in hostiles]
    order = data.draw(st.permutations(range(len(items))))
    parts = []
    for position, index in enumerate(order):
        kind, item = items[index]
        parts.append(valid_event(f"g-{position}", item) if kind == "good" else item.raw)
    body = b'{"sentAt": "2026-12-07T12:00:00Z", "batch": [' + b", ".join(parts) + b"]}"

    _envelope, events = decode_batch(body)
    assert len(events) == len(items)
    for position, index in enumerate(order):
        kind, item = items[index]
        where = f"$.batch[{position}]"
        if kind == "good":
            record = judge(events[position], where)
            assert record["messageId"] == f"g-{position}"
            assert record.get("properties") == item
        else:
            in_batch = rejection(bytes(events[position]), where)
            alone = rejection(item.raw)
            assert in_batch.code == alone.code == item.code
            assert in_batch.message == alone.message.replace("`$", f"`{where}", 1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(SAFE_TEXT, SAFE_VALUES, max_size=3), max_size=5),
    st.sampled_from([b"", b" ", b"\n\t"]),
)
def test_the_structural_scan_cuts_a_batch_where_msgspec_does(events, space) -> None:
    raws = [valid_event(f"m-{i}", props) for i, props in enumerate(events)]
    body = b"{" + space + b'"batch":' + space + b"[" + (b"," + space).join(raws) + b"]}"
    envelope, cut = split_batch(body)
    assert cut == [bytes(r) for r in batch_decoder.decode(body).batch] == raws
    assert json.loads(envelope) == {"batch": []}


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"batch": {}}', b'{"batch": [1,,2]}', b'{"batch": [1}', b'{"batch": ["x]}'],
)
def test_the_structural_scan_refuses_what_is_not_a_batch(body: bytes) -> None:
    with pytest.raises(NotJSON):
        split_batch(body)


def test_a_broken_envelope_fails_the_request_not_an_event() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_batch(b'{"context": {"ip": "\\u0000"}, "batch": [{"userId": "u"}]}')
    assert caught.value.code == "invalid_text" and "$.context.ip" in caught.value.message
    with pytest.raises(InvalidEvent) as caught:
        decode_batch(b'{"sentAt": 5, "batch": [{"userId": "\\ud800"}]}')
    assert caught.value.code == "invalid_field" and "sentAt" in caught.value.message


@given(st.integers(min_value=1, max_value=MAX_NESTING_DEPTH))
def test_nesting_up_to_the_limit_is_accepted(depth: int) -> None:
    value: object = 1
    for _ in range(depth):  # ``depth`` arrays
        value = [value]
    assert find_violation(value) is None
    if depth == MAX_NESTING_DEPTH:
        assert find_violation([value]).code == "too_deep"


def test_years_1_and_9999_that_need_no_correction_are_kept() -> None:
    raw = valid_event("m", {})[:-1] + b', "sentAt": "0001-01-01T00:00:00Z"}'
    assert judge(raw)["sentAt"] == "0001-01-01T00:00:00.000000Z"
