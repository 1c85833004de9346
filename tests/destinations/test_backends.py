"""Each backend really receives the data: Redis, PostgreSQL, SMTP, file drops, another Kirana.

Records go through the real queue and deliverer; the test then reads the
target system itself. Server tests skip (saying why) when the server is down.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kirana.destinations.config import parse_destination
from kirana.destinations.deliverer import Deliverer
from kirana.destinations.records import OutboundRecord
from kirana.destinations.registry import build
from kirana.destinations.store import DeliveryStore
from kirana.runtime import Platform
from tests.conftest import RunningKirana, start_server

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def deliver_all(store: DeliveryStore, definition: dict, records: list[OutboundRecord]) -> dict:
    """Queue ``records`` for a destination and drain the queue; return its health."""
    config = parse_destination(definition)
    store.save_destination(config)
    store.enqueue([(config.name, r) for r in records], "test")
    deliverer = Deliverer(store, config, build(config))
    try:
        for _ in range(200):
            if store.health(config.name)["queue_depth"] == 0:
                break
            time.sleep(deliverer.step())
        deliverer.destination.idle()
    finally:
        deliverer.stop()  # releases the lease and closes the backend
    return store.health(config.name)


def row(rid: str, key: str, action: str = "upsert", collection: str | None = "churn", **data):
    return OutboundRecord(rid, key, key, action, data, collection)  # type: ignore[arg-type]


# -- Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis(socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({exc})")
    prefix = f"kirana-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.mark.server
def test_redis_hashes_and_audience_sets(delivery: DeliveryStore, redis_prefix: str) -> None:
    import redis

    health = deliver_all(
        delivery,
        {"name": "promo", "kind": "redis", "settings": {"key_prefix": redis_prefix}},
        [
            row("1", "u1", collection="loyal", tier="gold", score=0.9),
            row("2", "u2", collection="loyal", tier="silver"),
            row("3", "u1", collection="loyal", tier="platinum"),
            row("4", "u2", "delete", collection="loyal"),
        ],
    )
    assert health["queue_depth"] == 0 and health["dead_letters"] == 0
    client = redis.Redis(decode_responses=True)
    assert client.smembers(f"{redis_prefix}loyal") == {"u1"}
    assert client.hgetall(f"{redis_prefix}loyal:u1") == {"tier": "platinum"}
    assert not client.exists(f"{redis_prefix}loyal:u2")


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc})")
    schema = f"kirana_dest_{uuid.uuid4().hex[:8]}"
    yield schema
    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    conn.close()


@pytest.mark.server
def test_postgres_upserts_by_key_adds_columns_and_mirrors_deletes(
    delivery: DeliveryStore, pg_schema: str
) -> None:
    import psycopg

    settings = {"dsn": POSTGRES_DSN, "schema": pg_schema, "table": "churn", "key_column": "user_id"}
    first = deliver_all(
        delivery,
        {"name": "pg", "kind": "postgres", "settings": settings},
        [
            row("1", "u1", score=0.2, segment="a"),
            row("2", "u2", score=0.5, segment="b"),
            row("3", "u1", score=0.7, segment="a", extra={"n": 1}),  # a new column appears
            row("4", "u2", "delete"),
            row("5", "u3", "insert", score=0.1, segment="c"),
            row("6", "u3", "insert", score=0.9, segment="z"),  # insert-only: kept first
        ],
    )
    assert first["dead_letters"] == 0, delivery.dead_letters("pg")
    with psycopg.connect(POSTGRES_DSN) as conn:
        rows = conn.execute(
            f'SELECT user_id, score, segment, extra FROM "{pg_schema}".churn ORDER BY user_id'
        ).fetchall()
    assert rows == [("u1", 0.7, "a", {"n": 1}), ("u3", 0.1, "c", None)]
    # a type clash is permanent and names the problem; the record is dead-lettered
    deliver_all(
        delivery,
        {"name": "pg", "kind": "postgres", "settings": settings},
        [row("7", "u4", score="not a number")],
    )
    (dead,) = delivery.dead_letters("pg")
    assert dead["record_id"] == "7" and "double precision" in dead["last_error"]


# -- SMTP ------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list]]:
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, received
    controller.stop()


def test_email_templated_from_record_fields(
    delivery: DeliveryStore, smtp_server: tuple[int, list]
) -> None:
    port, received = smtp_server
    health = deliver_all(
        delivery,
        {
            "name": "winback",
            "kind": "email",
            "settings": {
                "port": port,
                "from_address": "hello@shop.example",
                "subject": "We miss you, $first_name",
                "body": "Your ${category} favourites are back. Save $$5 today.",
            },
        },
        [
            row("r1", "u1", email="ann@example.com", first_name="Ann", category="dairy"),
            row("r2", "u2", email="bob@example.com", first_name="Bob"),  # lacks `category`
            row("r3", "u3", email="cy@example.com", first_name="Cy", category="bakery"),
        ],
    )
    assert [r[0] for r in received] == [["ann@example.com"], ["cy@example.com"]]
    first = received[0][1]
    assert first["Subject"] == "We miss you, Ann"
    assert first["Message-ID"] == "<r1@kirana>"
    assert "Your dairy favourites are back. Save $5 today." in first.get_payload()
    assert health["dead_letters"] == 1
    (dead,) = delivery.dead_letters("winback")
    assert dead["record_id"] == "r2" and "`category`" in dead["last_error"]


# -- file drops ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_drop_rotates_by_size_with_atomic_renames(
    delivery: DeliveryStore, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "drop"
    records = [row(f"r{i}", f"u{i}", score=i, name=f"n{i}") for i in range(30)]
    definition = {
        "name": "drop",
        "kind": "file",
        "batch_size": 7,  # ~1 kB of staged JSON per batch: rotation after every second one
        "settings": {"directory": str(out), "format": fmt, "rotate_bytes": 1000},
    }
    deliver_all(delivery, definition, records)
    finished = sorted(out.glob(f"kirana-*.{fmt}"))
    assert len(finished) >= 2  # rotated by size
    staged = list(out.glob(".*.staging.jsonl"))
    if fmt == "csv":
        rows = [r for f in finished for r in csv.DictReader(f.open())]
    else:
        rows = [r for f in finished for r in pq.read_table(f).to_pylist()]
    # a fresh deliverer finalises what is still staged (as after a restart)
    from kirana.destinations.config import FileDropSettings
    from kirana.destinations.file_drop import FileDropDestination

    FileDropDestination(FileDropSettings(directory=out, format=fmt))
    leftovers = sorted(set(out.glob(f"kirana-*.{fmt}")) - set(finished))
    assert len(leftovers) == (1 if staged else 0)
    for f in leftovers:
        rows += list(csv.DictReader(f.open())) if fmt == "csv" else pq.read_table(f).to_pylist()
    assert sorted(r["idempotency_key"] for r in rows) == sorted(f"r{i}" for i in range(30))
    assert not list(out.glob(".*"))  # no temporary or staging files left behind
    assert {str(r["score"]) for r in rows} == {str(i) for i in range(30)}


# -- Segment-compatible forwarding, into a second real Kirana ------------------------------


@pytest.fixture
def second_kirana(tmp_path: Path) -> Iterator[RunningKirana]:
    from kirana.config import load_settings

    platform = Platform.open(load_settings(tmp_path / "second", lake={"linger_seconds": 0.2}))
    _, write_key = platform.store.create_source("upstream")
    _, admin = platform.store.create_token("admin", "admin")
    _, viewer = platform.store.create_token("viewer", "viewer")
    server, thread, url = start_server(platform)
    try:
        yield RunningKirana(url, platform, write_key, admin, viewer)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_segment_forwarding_into_another_kirana(
    kirana: RunningKirana, second_kirana: RunningKirana
) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    definition = {
        "name": "downstream",
        "kind": "segment",
        "settings": {"url": second_kirana.url, "write_key": second_kirana.write_key},
        "routes": [
            {
                "events": ["Order Completed"],
                "where": [{"field": "properties.total", "op": "gt", "value": 20}],
            }
        ],
    }
    events = [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "c1",
            "messageId": "o1",
            "properties": {"total": 30},
            "timestamp": "2026-11-20T10:00:00Z",
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "c2",
            "messageId": "o2",
            "properties": {"total": 5},
            "timestamp": "2026-11-20T10:01:00Z",
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "c1",
            "messageId": "v1",
            "timestamp": "2026-11-20T10:02:00Z",
        },
    ]
    with kirana.client() as http:
        assert http.post("/v1/destinations", json=definition, headers=admin).status_code == 201
        assert (
            http.post("/v1/batch", json={"batch": events}, auth=(kirana.write_key, "")).status_code
            == 200
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        second_kirana.drain()
        rows = (
            second_kirana.lake(
                "SELECT message_id, user_id, event, "
                "strftime(timestamp, '%Y-%m-%dT%H:%M:%S') FROM events"
            )
            if (second_kirana.settings.lake_dir / "events").exists()
            else []
        )
        if rows:
            break
        time.sleep(0.2)
    # the event's own time survives the hop (it is not re-corrected by the receiver)
    assert rows == [("o1", "c1", "Order Completed", "2026-11-20T10:00:00")]


def test_file_drop_rotates_by_age_when_idle(tmp_path: Path) -> None:
    from kirana.destinations.config import FileDropSettings
    from kirana.destinations.file_drop import FileDropDestination

    out = tmp_path / "drop"
    drop = FileDropDestination(FileDropSettings(directory=out, rotate_seconds=0.05))
    drop.deliver([row("a", "u1", score=1), row("b", "u2", score=2)])
    assert not list(out.glob("kirana-*.csv"))  # young and small: still staged
    time.sleep(0.1)
    drop.idle()  # what the deliverer calls when its queue is empty
    (final,) = out.glob("kirana-*.csv")
    assert [r["idempotency_key"] for r in csv.DictReader(final.open())] == ["a", "b"]
    assert not list(out.glob(".*"))
