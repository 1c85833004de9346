"""Kirana with ``log.backend = "nats"``: the real HTTP API, a private JetStream server,
the lake at the end. Each event acknowledged lands exactly once; a full stream says 429."""

from __future__ import annotations

import secrets
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from kirana.config import Settings, load_settings
from kirana.eventlog.jetstream import JetStreamEventLog
from kirana.eventlog.protocol import REDACTED
from kirana.runtime import Platform
from tests.api.test_tracking import lake_ids, post
from tests.conftest import RunningKirana, _running, start_server
from tests.eventlog.nats_server import NatsServer
from tests.eventlog.store_scan import occurrences
from tests.eventlog.test_contract import read_all
from tests.privacy.test_erasure import ALICE_MARKERS, BOB_USER
from tests.privacy.test_erasure import (
    test_erasure_leaves_nothing_and_suppresses_future_events as erasure_scenario,
)


@pytest.fixture
def settings(tmp_path: Path, nats_server: NatsServer) -> Settings:
    """Overrides the shared fixture: the same Kirana, its log on the private server."""
    return load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.2},
        log={"backend": "nats", "nats_url": nats_server.url, "nats_max_bytes_mb": 1},
    )


def track(i: int, batch: int, size: int = 0) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"u{i % 7}",
        "messageId": f"b{batch}-e{i}",
        "properties": {"i": i, "padding": secrets.token_urlsafe(size)[:size]},
    }


def test_tracked_events_land_in_the_lake_exactly_once(kirana_any: RunningKirana) -> None:
    """Both arrangements: consumers as threads, and in a worker process that opens its
    own JetStream connection."""
    assert isinstance(kirana_any.platform.log, JetStreamEventLog)
    sent: set[str] = set()
    for b in range(20):
        body = {"batch": [track(i, b) for i in range(25)]}
        assert post(kirana_any, "/v1/batch", body).status_code == 200
        sent |= {e["messageId"] for e in body["batch"]}
        if b % 5 == 0:  # a client retrying a request it already sent: a new JetStream
            assert post(kirana_any, "/v1/batch", body).status_code == 200  # message
    single = {k: v for k, v in track(0, 99).items() if k != "type"}
    assert post(kirana_any, "/v1/track", single).status_code == 200
    sent.add(single["messageId"])
    assert lake_ids(kirana_any) == sorted(sent)  # each once: the lake de-duplicates
    status = kirana_any.platform.consumer_status()
    assert all(c["lag"] == 0 for c in status.values()), status


def test_an_erasure_reaches_the_jetstream_log_and_its_store_files(
    kirana_any: RunningKirana, nats_server: NatsServer
) -> None:
    """The privacy suite's own erasure scenario, with the log in JetStream: her events
    share messages with Bob's, so the messages are republished without hers and the
    originals securely deleted; no file of the server's store holds her afterwards."""
    erasure_scenario(kirana_any)
    assert occurrences(nats_server.store_dir, ALICE_MARKERS) == []
    records = read_all(kirana_any.platform.log, kirana_any.platform.log.start_offset)
    assert any(p == REDACTED for _, p in records)
    assert sum(BOB_USER.encode() in p for _, p in records) == 3


def test_committed_positions_survive_restarting_kirana_and_the_nats_server(
    settings: Settings, nats_server: NatsServer
) -> None:
    """The consumers resume where they committed, not from the start (nothing landed
    twice) and not from the end (nothing skipped), after both processes went away."""
    first = _running(settings, "all")
    kirana = next(first)
    batches = [{"batch": [track(i, b) for i in range(20)]} for b in range(12)]
    for body in batches[:6]:
        assert post(kirana, "/v1/batch", body).status_code == 200
    kirana.drain()
    before = {n: c["position"] for n, c in kirana.platform.consumer_status().items()}
    first.close()  # the server and the platform stop
    nats_server.restart()  # SIGKILL, then the same store directory

    platform = Platform.open(settings)
    server, thread, url = start_server(platform)
    kirana = RunningKirana(url, platform, kirana.write_key, kirana.admin_token, "")
    try:
        after = {n: c["position"] for n, c in kirana.platform.consumer_status().items()}
        assert after == before and min(after.values()) > kirana.platform.log.start_offset
        for body in [*batches[6:], batches[0]]:  # batches[0]: a client's late retry
            assert post(kirana, "/v1/batch", body).status_code == 200
        expected = sorted(e["messageId"] for body in batches for e in body["batch"])
        assert lake_ids(kirana) == expected
        status = kirana.platform.consumer_status()
        assert all(status[n]["position"] > before[n] for n in before)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_a_full_stream_answers_429_and_keeps_what_it_acknowledged(
    kirana: RunningKirana,
) -> None:
    acknowledged: set[str] = set()
    refused: httpx.Response | None = None
    for b in range(10):  # 400 KB a request against a 1 MiB stream
        body = {"batch": [track(i, b, size=20_000) for i in range(20)]}  # incompressible
        response = post(kirana, "/v1/batch", body)
        if response.status_code != 200:
            refused = response
            break
        acknowledged |= {e["messageId"] for e in body["batch"]}
    assert refused is not None and acknowledged
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "overloaded"
    assert "full" in refused.json()["message"]
    assert set(lake_ids(kirana)) == acknowledged


@pytest.mark.slow
def test_kill_9_of_the_api_under_load_loses_and_doubles_nothing(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As tests/e2e/test_crash.py, with the log in JetStream: the acknowledged events
    survive in the stream, the restarted platform's consumers resume from their
    committed positions, and the clients' retries land once."""
    from tests.e2e.test_crash import (
        Server,
        cli,
        lake_counts,
        make_batches,
        send_until_stopped,
        wait_caught_up,
    )

    monkeypatch.setenv("KIRANA_LOG__BACKEND", "nats")
    monkeypatch.setenv("KIRANA_LOG__NATS_URL", nats_server.url)
    monkeypatch.setenv("KIRANA_LOG__NATS_STREAM", f"CRASH_{uuid.uuid4().hex[:8]}")
    data_dir = tmp_path / "data"
    key = cli(data_dir, "sources", "create", "crash")
    token = cli(data_dir, "tokens", "create", "ops", "--role", "admin")
    batches = make_batches(200)
    shards = [batches[k::4] for k in range(4)]
    per_sender: list[set[int]] = [set() for _ in shards]

    server = Server(data_dir)
    stop = threading.Event()
    senders = [
        threading.Thread(target=send_until_stopped, args=(server.url, key, shard, acked, stop))
        for shard, acked in zip(shards, per_sender, strict=True)
    ]
    for s in senders:
        s.start()
    while sum(len(a) for a in per_sender) < 50:
        if not any(s.is_alive() for s in senders):
            break
        threading.Event().wait(0.01)
    server.kill9()
    for s in senders:
        s.join()
    acked_ids = {
        e["messageId"]
        for shard, acked in zip(shards, per_sender, strict=True)
        for i in acked
        for e in shard[i]
    }
    assert acked_ids, "nothing was acknowledged before the kill"

    server = Server(data_dir)
    try:
        for shard, acked in zip(shards, per_sender, strict=True):
            send_until_stopped(server.url, key, shard, acked, threading.Event())
        wait_caught_up(server.url, token)
        counts = lake_counts(data_dir)
    finally:
        server.stop()
    assert acked_ids <= set(counts), "an acknowledged event is missing from the lake"
    assert set(counts.values()) == {1}, "an event landed twice"
    assert len(counts) == 200 * 100
