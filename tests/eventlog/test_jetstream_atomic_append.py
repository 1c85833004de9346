"""One append is one JetStream message, stored whole or not at all (review finding 2).

Before, a large append was published as several messages one after another: with a
nearly full stream the first ones were stored, a later one was refused, the client was
told "nothing was accepted" (429) and its retry stored those events twice.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kirana.collect.service import MAX_BATCH_BYTES, MAX_EVENT_BYTES, Collector, Credentials
from kirana.config import Settings, load_settings
from kirana.eventlog.jetstream import JetStreamEventLog
from kirana.eventlog.jetstream_codec import offset_of, pack
from kirana.eventlog.protocol import REDACTED, AppendTooLarge, LogBusy
from kirana.runtime import _parts
from kirana.store.protocol import Source
from tests.api.test_tracking import post
from tests.conftest import RunningKirana
from tests.eventlog.nats_server import NatsServer
from tests.eventlog.test_contract import read_all

SOURCE = Source(id="s1", name="web", created_at=datetime.now(UTC))


def stored_messages(server: NatsServer, stream: str = "KIRANA_EVENTS") -> int:
    """Messages in ``stream`` as the server's monitoring endpoint reports them."""
    url = f"http://127.0.0.1:{server.monitor_port}/jsz?accounts=true&streams=true"
    accounts = httpx.get(url, timeout=10).json()["account_details"]
    streams = [s for a in accounts for s in a.get("stream_detail", [])]
    return next(s["state"]["messages"] for s in streams if s["name"] == stream)


def largest_legal_batch() -> tuple[bytes, int]:
    """The reviewer's request: 500 KB of the smallest events, ~2.2 MB once normalised
    (each gets a generated messageId, timestamps, context)."""
    event = {"type": "track", "event": "e", "anonymousId": "a"}
    count = (MAX_BATCH_BYTES - 20) // (len(json.dumps(event, separators=(",", ":"))) + 1)
    body = json.dumps({"batch": [event] * count}, separators=(",", ":")).encode()
    assert len(body) <= MAX_BATCH_BYTES
    return body, count


def ingest(collector: Collector, body: bytes) -> int:
    result = asyncio.run(collector.ingest("batch", body, credentials=Credentials(x_write_key="k")))
    return result.accepted


@pytest.mark.parametrize(
    ("room", "stored_whole"),
    [("empty", True), ("half full", True), ("nearly full", False)],
)
def test_the_largest_batch_is_stored_whole_or_not_at_all(
    nats_server: NatsServer, room: str, stored_whole: bool
) -> None:
    """A 1.5 MB stream (the reviewer's): the ~2.2 MB of records, compressed, fit when
    it is empty or half full; nearly full, the request is refused and nothing stored."""
    body, count = largest_legal_batch()
    with JetStreamEventLog(nats_server.url, max_bytes=1_500_000) as log:
        collector = Collector(log, lambda key: SOURCE)
        filler = [b"E" + random.Random(7).randbytes(40_000)]  # incompressible
        try:
            for _ in range({"empty": 0, "half full": 18, "nearly full": 10**6}[room]):
                log.append_sync(filler)
        except LogBusy:
            assert room == "nearly full"
        before = read_all(log, log.start_offset)
        messages = stored_messages(nats_server)
        if stored_whole:
            assert ingest(collector, body) == count
            stored = read_all(log, log.start_offset)[len(before) :]
            assert len(stored) == count
            assert len({offset >> 20 for offset, _ in stored}) == 1  # in one message
            assert stored_messages(nats_server) == messages + 1
        else:
            with pytest.raises(LogBusy, match="full"):  # 429: "nothing was accepted"
                ingest(collector, body)
            assert read_all(log, log.start_offset) == before  # and nothing was
            assert stored_messages(nats_server) == messages


# appends up to the collector's limits: up to 500 KB of events of up to 32 KB each, each
# 1-4x its JSON once normalised; incompressible or JSON-like
append_shapes = st.tuples(
    st.lists(st.integers(1, 4 * MAX_EVENT_BYTES), min_size=1, max_size=60),
    st.integers(0, 2**32),
    st.booleans(),
).filter(lambda shape: sum(shape[0]) <= 4 * MAX_BATCH_BYTES)


def records_of(sizes: list[int], seed: int, repetitive: bool) -> list[bytes]:
    rng = random.Random(seed)
    if repetitive:
        return [
            (b'E{"event":"e","n":%d}' % i * (size // 18 + 1))[:size] for i, size in enumerate(sizes)
        ]
    return [b"E" + rng.randbytes(size - 1) for size in sizes]


@pytest.fixture
def one_log(nats_server: NatsServer) -> Iterator[JetStreamEventLog]:
    with JetStreamEventLog(nats_server.url) as log:
        yield log


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(append_shapes)
def test_any_append_is_exactly_one_stored_message_or_refused_before_publishing(
    nats_server: NatsServer, one_log: JetStreamEventLog, shape: tuple[list[int], int, bool]
) -> None:
    records = records_of(*shape)
    before = stored_messages(nats_server)
    start = one_log.end_offset
    try:
        offsets = one_log.append_sync(records)
    except AppendTooLarge as exc:  # only incompressible bulk; nothing of it was published
        assert "max_payload" in str(exc) and not shape[2]
        assert stored_messages(nats_server) == before
        assert one_log.read(start).records == []
        return
    assert stored_messages(nats_server) == before + 1
    assert len({offset >> 20 for offset in offsets}) == 1
    assert [(r.offset, r.payload) for r in one_log.read(start, len(records) + 1).records] == list(
        zip(offsets, records, strict=True)
    )


@pytest.fixture
def small_payload_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-store", "max_payload: 65536\n")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path, small_payload_server: NatsServer) -> Settings:
    """Overrides the shared fixture: Kirana's log on a server with a 64 KiB max_payload."""
    return load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.2},
        log={"backend": "nats", "nats_url": small_payload_server.url},
    )


def test_a_request_too_large_for_one_message_answers_413_and_stores_nothing(
    kirana: RunningKirana, small_payload_server: NatsServer
) -> None:
    rng = random.Random(3)
    noise = [rng.randbytes(9_000).hex() for _ in range(10)]  # ~180 KB, incompressible
    body = {
        "batch": [
            {"type": "track", "event": "e", "userId": "u", "properties": {"n": n}} for n in noise
        ]
    }
    refused = post(kirana, "/v1/batch", body)
    assert refused.status_code == 413
    assert refused.json()["code"] == "append_too_large"
    assert "max_payload" in refused.json()["message"]
    assert "nothing was accepted" in refused.json()["message"]
    assert stored_messages(small_payload_server) == 0
    small = {"batch": body["batch"][:1]}  # one event of it fits: the log still takes appends
    assert post(kirana, "/v1/batch", small).status_code == 200
    assert stored_messages(small_payload_server) == 1


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=80), st.integers(1, 1000))
def test_derived_events_are_appended_in_runs_no_larger_than_a_request(
    records: list[bytes], limit: int
) -> None:
    """Platform.emit's split: order kept, each run within ``limit`` unless one record."""
    parts = _parts(records, limit)
    assert [r for part in parts for r in part] == records
    assert all(sum(map(len, part)) <= limit or len(part) == 1 for part in parts)
    assert all(part for part in parts) or records == []


def test_messages_written_before_compression_are_still_read_at_their_offsets(
    nats_server: NatsServer,
) -> None:
    """An append stored by the earlier format: plain frames, split over two messages."""
    old_parts = [[b"Eold-0", b"Eold-1"], [b"Eold-2"]]

    async def publish_old() -> list[int]:
        connection = await nats.connect(nats_server.url)
        try:
            js = connection.jetstream()
            return [(await js.publish("kirana.events", pack(part))).seq for part in old_parts]
        finally:
            await connection.close()

    with JetStreamEventLog(nats_server.url) as log:
        first, second = asyncio.run(publish_old())
        (new,) = log.append_sync([b"Enew"])
        assert [(r.offset, r.payload) for r in log.read(log.start_offset).records] == [
            (offset_of(first, 0), b"Eold-0"),
            (offset_of(first, 1), b"Eold-1"),
            (offset_of(second, 0), b"Eold-2"),
            (new, b"Enew"),
        ]
        assert log.redact(lambda payload: payload == b"Eold-1") == 1  # republished compressed
        assert [r.payload for r in log.read(log.start_offset).records] == [
            b"Eold-0",
            REDACTED,
            b"Eold-2",
            b"Enew",
        ]
