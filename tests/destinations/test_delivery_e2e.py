"""Events routed from the log to a webhook that is down, then recovers: nothing lost, in order."""

from __future__ import annotations

import time
from collections import defaultdict

from kirana.destinations.signing import verify
from tests.conftest import RunningKirana, free_port
from tests.destinations.receivers import WebhookReceiver

SECRET = "a-shared-secret-of-some-length"


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_outage_then_recovery_delivers_every_record_in_order_per_user(
    kirana: RunningKirana,
) -> None:
    port = free_port()  # nothing listens here yet: the destination is down
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    definition = {
        "name": "hook",
        "kind": "webhook",
        "settings": {"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET},
        "routes": [
            {
                "events": ["Product Viewed"],
                "where": [{"field": "properties.n", "op": "gte", "value": 0}],
            }
        ],
        "batch_size": 7,
        "backoff_seconds": 0.05,
        "backoff_max_seconds": 0.3,
    }
    users = [f"user-{u}" for u in range(4)]
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": users[i % 4],
            "messageId": f"m-{i:03d}",
            "properties": {"n": i},
            "timestamp": "2026-11-20T10:00:00Z",
        }
        for i in range(60)
    ]
    ignored = {
        "type": "track",
        "event": "Cart Viewed",
        "userId": "user-0",
        "messageId": "x-1",
        "timestamp": "2026-11-20T10:00:00Z",
    }
    with kirana.client() as http:
        created = http.post("/v1/destinations", json=definition, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["settings"]["secret"] == "***"
        sent = http.post(
            "/v1/batch", json={"batch": [*events, ignored]}, auth=(kirana.write_key, "")
        )
        assert sent.status_code == 200

        def failing() -> bool:
            health = http.get("/v1/destinations/hook", headers=admin).json()["health"]
            return health["failed_attempts_15m"] >= 2

        wait_for(failing, what="failed attempts while the destination is down")
        down = http.get("/v1/destinations/hook", headers=admin).json()["health"]
        assert down["queue_depth"] == 60 and "ConnectError" in down["last_error"]

        receiver = WebhookReceiver(port=port)  # the destination comes back
        try:
            wait_for(lambda: len(receiver.accepted) >= 60, what="all 60 records")
            time.sleep(0.3)  # nothing more (no duplicates) arrives
            keys = [r["idempotency_key"] for r in receiver.accepted]
            assert sorted(keys) == [e["messageId"] for e in events]
            by_user: dict[str, list[int]] = defaultdict(list)
            for record in receiver.accepted:
                assert record["action"] == "event"
                by_user[record["key"]].append(record["data"]["properties"]["n"])
            for user, seen in by_user.items():
                assert seen == sorted(seen), f"{user} out of order: {seen}"
            attempt = receiver.attempts[0]
            assert verify(
                SECRET, attempt["timestamp"], attempt["body"], attempt["signature"], now=time.time()
            )
            assert not verify(
                "wrong-secret-wrong-secret",
                attempt["timestamp"],
                attempt["body"],
                attempt["signature"],
                now=time.time(),
            )
        finally:
            receiver.close()
        status = http.get("/v1/destinations/status", headers=admin).json()
        (hook,) = status["destinations"]
        assert hook["queue_depth"] == 0 and hook["dead_letters"] == 0
        assert hook["error_rate_15m"] > 0
        record = http.get("/v1/destinations/hook/records/m-000", headers=admin).json()
        assert record["status"] == "delivered" and record["attempts"] >= 1
        fresh = http.get("/v1/destinations/hook/records/m-059", headers=admin).json()
        assert fresh["status"] == "delivered" and fresh["attempts"] == 0


def test_bad_definitions_are_refused_with_the_field_named(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
    with kirana.client() as http:
        short = http.post(
            "/v1/destinations",
            json={"name": "h", "kind": "webhook", "settings": {"url": "http://x", "secret": "s"}},
            headers=admin,
        )
        assert short.status_code == 422
        assert "settings.secret" in short.json()["message"]
        unknown = http.post("/v1/destinations", json={"name": "h", "kind": "fax"}, headers=admin)
        assert unknown.status_code == 422 and "kind" in unknown.json()["message"]
        forbidden = http.post(
            "/v1/destinations",
            json={"name": "r", "kind": "redis", "settings": {}},
            headers=viewer,
        )
        assert forbidden.status_code == 403
        assert http.get("/v1/destinations/nope", headers=viewer).status_code == 404
