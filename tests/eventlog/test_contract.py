"""The EventLog contract, run against every backend: segment files and NATS JetStream.

The JetStream log runs on a private ``nats-server`` (its own port and store directory),
so a test may restart it on the same store or scan the store's files.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.eventlog.jetstream import JetStreamEventLog
from kirana.eventlog.protocol import REDACTED, EventLog, LogBusy, LogUnavailable
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from tests.conftest import free_port
from tests.eventlog.nats_server import NatsServer
from tests.eventlog.store_scan import files_containing

T = TypeVar("T")


class Harness:
    """Opens one backend's log and restarts it (for NATS: the server too, same store)."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.server: NatsServer | None = None
        if backend == "nats":
            self.server = request.getfixturevalue("nats_server")
            self.store_dir = self.server.store_dir
        else:
            self.store_dir = tmp_path / "log"
        self.options: dict = {}
        self.log: EventLog | None = None

    def open(self, **options: object) -> EventLog:
        self.options = options
        if self.server is not None:
            self.log = JetStreamEventLog(self.server.url, ack_timeout=1.0, **options)
        else:
            self.log = FileEventLog(self.store_dir, segment_bytes=512, **options)
        return self.log

    def restart(self) -> EventLog:
        assert self.log is not None
        self.log.close()
        if self.server is not None:
            self.server.restart()
        return self.open(**self.options)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


@pytest.fixture(params=["file", "nats"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(request.param, tmp_path, request)
    try:
        yield h
    finally:
        h.close()


def read_all(log: EventLog, offset: int, chunk: int = 1000) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while True:
        result = log.read(offset, chunk)
        assert result.next_offset >= offset
        out.extend((r.offset, r.payload) for r in result.records)
        if not result.records:
            assert result.next_offset == log.end_offset
            return out
        offset = result.next_offset


batches = st.lists(
    st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=25), min_size=1, max_size=6
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(appends=batches, chunk=st.integers(1, 40), pick=st.integers(0, 10_000))
def test_records_read_back_at_their_acknowledged_offsets_from_any_position(
    harness: Harness, appends: list[list[bytes]], chunk: int, pick: int
) -> None:
    """Offset arithmetic (several records per JetStream message, reads stopping inside
    one) must hand every record back once, in order, at the offset its append returned."""
    log = harness.log or harness.open()
    begin = log.end_offset
    acknowledged = [(o, p) for ps in appends for o, p in zip(log.append_sync(ps), ps, strict=True)]
    offsets = [o for o, _ in acknowledged]
    assert offsets == sorted(set(offsets)) and offsets[0] >= begin
    assert log.end_offset > offsets[-1]
    assert read_all(log, begin, chunk) == acknowledged
    start = pick % len(acknowledged)
    assert read_all(log, offsets[start], chunk) == acknowledged[start:]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(appends=batches, erase=st.sets(st.integers(0, 200)), chunk=st.integers(1, 40))
def test_redacted_records_keep_every_offset_for_readers_at_any_position(
    harness: Harness, appends: list[list[bytes]], erase: set[int], chunk: int
) -> None:
    """Redaction (for JetStream: republished copies read in place of deleted messages)
    must not shift, drop or repeat any other record, wherever a reader starts."""
    log = harness.log or harness.open()
    begin, tag = log.end_offset, uuid.uuid4().hex.encode()
    counter = iter(range(10_000))
    numbered = [[b"E%s-%d-" % (tag, next(counter)) + p for p in ps] for ps in appends]
    flat = [p for ps in numbered for p in ps]
    chosen = {flat[i] for i in erase if i < len(flat)}
    offsets = [o for ps in numbered for o in log.append_sync(ps)]
    assert log.redact(lambda payload: payload in chosen) == len(chosen)
    expected = [(o, REDACTED if p in chosen else p) for o, p in zip(offsets, flat, strict=True)]
    for start in {0, len(flat) // 2, len(flat) - 1}:
        got = [
            (o, p[:1] if p[:1] == REDACTED else p) for o, p in read_all(log, offsets[start], chunk)
        ]
        assert got == expected[start:]
    assert read_all(log, begin, chunk)[0][0] == offsets[0]


def test_concurrent_async_appends_each_get_their_own_durable_offsets(harness: Harness) -> None:
    log = harness.open()

    async def many() -> list[list[int]]:
        return await asyncio.gather(*(log.append([b"E%d" % i, b"F%d" % i]) for i in range(50)))

    results = asyncio.run(many())
    stored = dict(read_all(log, log.start_offset))
    for i, offsets in enumerate(results):
        assert [stored[o] for o in offsets] == [b"E%d" % i, b"F%d" % i]
    assert len(stored) == 100


def test_positions_stay_valid_across_a_restart(harness: Harness) -> None:
    log = harness.open()
    first = log.append_sync([b"a1", b"a2", b"a3"]) + log.append_sync([b"b1", b"b2"])
    position = log.read(log.start_offset, 2).next_offset  # a consumer stopped mid-append
    end = log.end_offset
    log = harness.restart()
    assert log.end_offset == end
    assert [p for _, p in read_all(log, position)] == [b"a3", b"b1", b"b2"]
    later = log.append_sync([b"c1"])
    assert later[0] >= end > first[-1]
    assert log.wait_for(end, timeout=5)
    assert read_all(log, end) == [(later[0], b"c1")]


def test_lag_shrinks_to_zero_as_a_reader_reaches_the_end(harness: Harness) -> None:
    """Lag is in bytes for every backend (JetStream offsets are not byte positions)."""
    log = harness.open()
    start = log.start_offset
    assert log.lag(start) == 0
    for i in range(5):
        log.append_sync([b"E%d-" % i + os.urandom(200), b"Q%d" % i])  # incompressible
    positions = [start, *(r.offset for r in log.read(start).records), log.end_offset]
    lags = [log.lag(p) for p in positions]
    assert lags == sorted(lags, reverse=True) and lags[-1] == 0
    assert 5 * 200 <= lags[0] <= 5 * 400  # about the bytes appended, not offset units


def test_retention_frees_only_consumed_records_old_enough(harness: Harness) -> None:
    log = harness.open()
    appended = [log.append_sync([b"E%03d-%d" % (i, j) for j in range(5)]) for i in range(20)]
    records = read_all(log, log.start_offset)
    start, before = log.start_offset, appended[10][0]
    assert log.trim(before, min_age_seconds=3600) == 0
    assert log.start_offset == start
    assert log.trim(before) > 0
    assert start < log.start_offset <= before
    kept = [r for r in records if r[0] >= log.start_offset]
    assert read_all(log, log.start_offset) == kept
    assert all(r in kept for r in records if r[0] >= before)
    with pytest.raises(ValueError):
        log.read(start)


def person_event(user: str, secret: str) -> bytes:
    return event_record(
        {
            "type": "identify",
            "messageId": str(uuid.uuid4()),
            "userId": user,
            "traits": {"email": secret},
        }
    )


def about(user: str):
    """The erasure's predicate for one person (privacy's matcher decodes the same way)."""
    needle = b'"userId":"%s"' % user.encode()
    return lambda payload: payload[:1] == b"E" and needle in payload


def test_redaction_tombstones_only_the_persons_records_and_leaves_no_plaintext(
    harness: Harness,
) -> None:
    log = harness.open()
    secret = f"erase-me-{uuid.uuid4().hex}@example.com".encode()
    other_secret = f"second-{uuid.uuid4().hex}@example.com".encode()
    appends = [
        [person_event("alice", secret.decode()), person_event("bob", "bob@example.com")],
        [person_event("carol", other_secret.decode()), person_event("alice", secret.decode())],
        [person_event("bob", "bob@example.com")],
        [person_event("alice", secret.decode())],  # a message holding only her events
    ]
    offsets = [log.append_sync(a) for a in appends]
    before = read_all(log, log.start_offset)
    erased = {offsets[0][0], offsets[1][1], offsets[3][0]}
    assert files_containing(harness.store_dir, secret)  # the scan can find it (compressed)

    assert log.redact(about("alice")) == 3
    assert log.redact(about("alice")) == 0  # idempotent
    # a second person in a message already redacted once: the replacement is redone
    assert log.redact(about("carol")) == 1
    erased.add(offsets[1][0])

    def check(current: EventLog) -> None:
        after = read_all(current, current.start_offset)
        assert [o for o, _ in after] == [o for o, _ in before]  # every offset still valid
        for (offset, payload), (_, original) in zip(after, before, strict=True):
            if offset in erased:
                assert payload[:1] == REDACTED
            else:
                assert payload == original

    check(log)
    check(harness.restart())
    assert files_containing(harness.store_dir, secret) == []
    assert files_containing(harness.store_dir, other_secret) == []


def test_a_redacted_first_message_is_still_read_from_the_start(harness: Harness) -> None:
    log = harness.open()
    start = log.start_offset
    first = log.append_sync([person_event("alice", "a@example.com")])
    second = log.append_sync([b"Ekeep"])
    assert log.redact(about("alice")) == 1
    assert log.start_offset == start
    assert [o for o, _ in read_all(log, log.start_offset)] == [first[0], second[0]]


# -- JetStream only --------------------------------------------------------------------


def test_a_republished_message_id_is_stored_once(nats_server: NatsServer) -> None:
    """What an append does when an ack is lost: it publishes again with the same id."""
    with JetStreamEventLog(nats_server.url) as log:
        body = b"\x00"  # any bytes: the server de-duplicates by id, not by content
        first = log._run(log._publish(body, "append-1-0"))
        again = log._run(log._publish(body, "append-1-0"))
        other = log._run(log._publish(body, "append-2-0"))
        assert again == first and other == first + 1
        assert log.end_offset == (other + 1) << 20


def test_a_full_stream_refuses_appends_without_losing_acknowledged_ones(
    nats_server: NatsServer,
) -> None:
    with JetStreamEventLog(nats_server.url, max_bytes=64 * 1024) as log:
        accepted: list[int] = []
        with pytest.raises(LogBusy, match="full"):
            for i in range(1000):
                accepted += log.append_sync([b"E" + b"x" * 1000 + b"%d" % i])
        assert 0 < len(accepted) < 1000
        assert [o for o, _ in read_all(log, log.start_offset)] == accepted
        assert log.pending_bytes == 0


def eventually(read: Callable[[], T], seconds: float = 20) -> T:
    """``read()`` once the client has reconnected (consumers retry the same way)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return read()
        except LogUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_an_unreachable_server_is_an_error_not_a_silent_drop(nats_server: NatsServer) -> None:
    with JetStreamEventLog(nats_server.url, ack_timeout=0.3) as log:
        kept = log.append_sync([b"Ebefore"])
        nats_server.kill()
        with pytest.raises(LogUnavailable):  # LogBusy (no ack) is a LogUnavailable too
            log.append_sync([b"Eduring"])
        nats_server.start()
        assert eventually(lambda: [o for o, _ in read_all(log, log.start_offset)]) == kept
        after = log.append_sync([b"Eafter"])
        assert [p for _, p in read_all(log, kept[0])][-1] == b"Eafter" and after[0] > kept[0]


def test_an_unreachable_url_is_named_without_its_credentials() -> None:
    url = f"nats://kirana:s3cret-pw@127.0.0.1:{free_port()}"
    with pytest.raises(LogUnavailable, match=r"log\.nats_url") as refused:
        JetStreamEventLog(url)
    assert "s3cret-pw" not in str(refused.value) and "nats://***@127.0.0.1:" in str(refused.value)
