"""The deliverer against a real HTTP receiver, driven pass by pass with a controlled clock."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.destinations.config import parse_destination
from kirana.destinations.deliverer import Deliverer
from kirana.destinations.records import OutboundRecord
from kirana.destinations.registry import build
from kirana.destinations.store import DeliveryStore, store_path
from tests.destinations.receivers import WebhookReceiver


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make(store: DeliveryStore, receiver: WebhookReceiver, clock: Clock, **extra) -> Deliverer:
    config = parse_destination(
        {
            "name": "hook",
            "kind": "webhook",
            "settings": {"url": receiver.url, "secret": "s" * 20},
            "batch_size": 10,
            "backoff_seconds": 1,
            "backoff_max_seconds": 8,
            **extra,
        }
    )
    store.save_destination(config)
    return Deliverer(store, config, build(config), clock=clock)


def record(rid: str, user: str, **data) -> OutboundRecord:
    return OutboundRecord(rid, user, user, "event", {"id": rid, **data})


def run_until_idle(deliverer: Deliverer, clock: Clock, passes: int = 200) -> None:
    """Step the deliverer, jumping the clock over every wait, until the queue is empty."""
    for _ in range(passes):
        if deliverer.store.health("hook")["queue_depth"] == 0:
            return
        wait = deliverer.step()
        clock.now += wait
    raise AssertionError("queue did not empty")


def ids(receiver: WebhookReceiver) -> list[str]:
    return [r["idempotency_key"] for r in receiver.accepted]


def test_permanent_refusal_dead_letters_only_the_poison_record_and_replay_delivers_it(
    delivery: DeliveryStore, receiver: WebhookReceiver
) -> None:
    poisoned = {"on": True}

    def respond(batch):
        bad = poisoned["on"] and any(r["data"].get("poison") for r in batch)
        return (400, {}) if bad else (200, {})

    receiver.respond = respond
    clock = Clock()
    deliverer = make(delivery, receiver, clock)
    delivery.enqueue(
        [
            ("hook", record("a", "u1")),
            ("hook", record("b", "u1", poison=True)),
            ("hook", record("c", "u1")),
            ("hook", record("d", "u2")),
        ],
        "test",
    )
    run_until_idle(deliverer, clock)
    assert ids(receiver) == ["a", "c", "d"]
    (dead,) = delivery.dead_letters("hook")
    assert dead["record_id"] == "b" and "HTTP 400" in dead["last_error"]
    assert delivery.record_status("hook", "b")["status"] == "dead"

    poisoned["on"] = False  # the receiver is fixed; replay the dead letter
    assert delivery.replay("hook") == 1
    run_until_idle(deliverer, clock)
    assert ids(receiver) == ["a", "c", "d", "b"]
    assert delivery.record_status("hook", "b")["status"] == "delivered"
    assert delivery.dead_letters("hook") == []


def test_a_failing_user_waits_while_others_proceed_then_dead_letters_after_max_attempts(
    delivery: DeliveryStore, receiver: WebhookReceiver
) -> None:
    receiver.respond = lambda batch: (
        (500, {}) if any(r["data"].get("poison") for r in batch) else (200, {})
    )
    clock = Clock()
    deliverer = make(delivery, receiver, clock, max_attempts=3)
    delivery.enqueue(
        [
            ("hook", record("x", "u1", poison=True)),
            ("hook", record("y", "u1")),
            ("hook", record("z", "u2")),
        ],
        "test",
    )
    run_until_idle(deliverer, clock)
    # z went out while x was backing off; y waited for x, which gave up after 3 attempts
    assert ids(receiver) == ["z", "y"]
    x_attempts = [
        a for a in receiver.attempts if any(r["idempotency_key"] == "x" for r in a["batch"])
    ]
    assert len(x_attempts) == 3 and all(a["status"] == 500 for a in x_attempts)
    (dead,) = delivery.dead_letters("hook")
    assert dead["record_id"] == "x" and dead["attempts"] == 3


def test_throttling_honours_retry_after_and_costs_no_attempts(
    delivery: DeliveryStore, receiver: WebhookReceiver
) -> None:
    answers = [(429, {"Retry-After": "7"}), (429, {"Retry-After": "7"})]
    receiver.respond = lambda batch: answers.pop(0) if answers else (200, {})
    clock = Clock()
    deliverer = make(delivery, receiver, clock, max_attempts=1)
    delivery.enqueue([("hook", record("a", "u1"))], "test")
    start = clock.now
    assert deliverer.step() == 0.0  # first try: 429
    assert deliverer.step() > 0  # paused
    run_until_idle(deliverer, clock)
    assert ids(receiver) == ["a"]  # max_attempts=1, yet throttling never dead-lettered it
    assert clock.now - start >= 14  # waited Retry-After twice


def test_rate_limit_spaces_batches(delivery: DeliveryStore, receiver: WebhookReceiver) -> None:
    clock = Clock()
    deliverer = make(delivery, receiver, clock, rate_limit=10, burst=10, batch_size=10)
    delivery.enqueue([("hook", record(f"r{i}", f"u{i}")) for i in range(30)], "test")
    start = clock.now
    run_until_idle(deliverer, clock)
    assert len(receiver.accepted) == 30
    # 10 at once (the burst), then 10 a second: at least 2 s of the controlled clock
    assert clock.now - start >= 2.0 - 1e-6
    sizes = [len(a["batch"]) for a in receiver.attempts]
    assert sizes == [10, 10, 10]


def test_a_burst_smaller_than_a_batch_shrinks_the_batches(
    delivery: DeliveryStore, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    deliverer = make(delivery, receiver, clock, rate_limit=4, burst=4, batch_size=10)
    delivery.enqueue([("hook", record(f"r{i}", f"u{i}")) for i in range(12)], "test")
    start = clock.now
    run_until_idle(deliverer, clock)
    assert [len(a["batch"]) for a in receiver.attempts] == [4, 4, 4]
    assert clock.now - start >= 2.0 - 1e-6  # 4 now, then 4 a second


def test_replaying_the_producer_queues_nothing_twice(delivery: DeliveryStore) -> None:
    items = [("hook", record("a", "u1")), ("hook", record("b", "u1"))]
    assert delivery.enqueue(items, "test") == 2
    assert delivery.enqueue(items, "test") == 0
    assert delivery.health("hook")["queue_depth"] == 2


def test_erasing_a_user_clears_their_records(delivery: DeliveryStore) -> None:
    delivery.enqueue([("hook", record("a", "u1")), ("hook", record("b", "u2"))], "test")
    assert delivery.erase(["u1"]) == 1
    assert [r["record_id"] for r in delivery.records("hook")] == ["b"]


def test_cli_status_dead_letters_and_replay(tmp_path, receiver: WebhookReceiver) -> None:
    data = tmp_path / "data"
    store = DeliveryStore(store_path(data / "state"))
    definition = tmp_path / "hook.json"
    hook = {
        "name": "hook",
        "kind": "webhook",
        "settings": {"url": receiver.url, "secret": "s" * 20},
    }
    definition.write_text(json.dumps(hook))
    runner = CliRunner()
    out = runner.invoke(
        app, ["destinations", "create", "-f", str(definition), "--data-dir", str(data)]
    )
    assert out.exit_code == 0, out.output
    again = runner.invoke(
        app, ["destinations", "create", "-f", str(definition), "--data-dir", str(data)]
    )
    assert again.exit_code == 1 and "exists" in again.output
    receiver.respond = lambda batch: (422, {})
    clock = Clock()
    config = store.destination("hook")
    deliverer = Deliverer(store, config, build(config), clock=clock)
    store.enqueue([("hook", record("a", "u1"))], "test")
    deliverer.step()
    status = runner.invoke(app, ["destinations", "status", "--data-dir", str(data)])
    assert "hook" in status.output and "HTTP 422" in status.output
    dead = runner.invoke(app, ["destinations", "dead-letters", "hook", "--data-dir", str(data)])
    assert '"record_id": "a"' in dead.output
    replayed = runner.invoke(
        app, ["destinations", "replay", "hook", "--record-id", "a", "--data-dir", str(data)]
    )
    assert "1 record(s)" in replayed.output
    receiver.respond = lambda batch: (200, {})
    deliverer.step()
    assert ids(receiver) == ["a"]
    missing = runner.invoke(app, ["destinations", "show", "nope", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "no destination named 'nope'" in missing.output
    store.close()


def test_router_routes_only_events_received_after_creation_and_replays_idempotently(
    delivery: DeliveryStore, receiver: WebhookReceiver
) -> None:
    from types import SimpleNamespace

    from kirana.destinations.router import DestinationRouter
    from kirana.eventlog.protocol import LogRecord
    from kirana.eventlog.records import event_record

    def event(n: int, received: float) -> bytes:
        stamp = datetime.fromtimestamp(received, UTC).isoformat()
        return event_record(
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "u",
                "messageId": f"e{n}",
                "receivedAt": stamp,
                "timestamp": stamp,
            }
        )

    make(delivery, receiver, Clock(), routes=[{"events": ["Order Completed"]}])
    created = delivery.destinations_since()[0][1]
    records = [
        LogRecord(0, event(1, created - 60)),  # received before the destination existed
        LogRecord(1, b"Q{}"),  # a quarantined record: not an event
        LogRecord(2, event(2, created + 1)),
        LogRecord(3, event(3, created + 2)),
    ]
    # a router starting late (no stored position) reads the log from its start
    router = DestinationRouter(SimpleNamespace(start_offset=0), delivery)
    assert router.position() == 0
    router.handle(records, 4)
    assert [r["record_id"] for r in delivery.records("hook")] == ["e2", "e3"]
    assert delivery.get_position("destinations") == 4
    again = DestinationRouter(SimpleNamespace(start_offset=0), delivery)
    assert again.position() == 4
    again.handle(records, 4)  # a replay of the same stretch queues nothing twice
    assert len(delivery.records("hook")) == 2
