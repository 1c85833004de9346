"""Demo-like data for the console tests, sent through the real tracking API: a few of the
demo simulator's shoppers, a metric, an experiment, a flag and a webhook destination whose
receiver refuses everything at first (so there are dead letters to replay)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from kirana.demo.loader import demo_events, post_batches
from kirana.demo.showcase import install_content, run_models
from kirana.destinations import service as destination_service
from kirana.destinations.extension import delivery_store
from kirana.experiments.platform import experiments
from kirana.runtime import Platform
from kirana.syncs import service as sync_service
from tests.destinations.receivers import WebhookReceiver

USERS = 4  # demo users 1, 2, 3 and 7; user 1's e-mail is user1@example.com
EMAIL = "user1@example.com"
USER_ID = "1"


@dataclass
class Seeded:
    receiver: WebhookReceiver
    refuse: list[bool]  # set refuse[0] = False to let the receiver accept


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def seed(platform: Platform, url: str, write_key: str) -> Seeded:
    refuse = [True]
    receiver = WebhookReceiver(lambda batch: (400, {}) if refuse[0] else (200, {}))
    store = delivery_store(platform)
    destination_service.create(
        store,
        {
            "name": "crm",
            "kind": "webhook",
            "settings": {"url": receiver.url, "secret": "s" * 24},
            "routes": [{"stream": "events", "events": ["Order Completed"]}],
            "max_attempts": 1,
            "backoff_seconds": 0.05,
        },
    )
    destination_service.create(
        store,
        {
            "name": "drops",
            "kind": "file",
            "settings": {"directory": str(platform.settings.data_dir / "drops")},
        },
    )
    service = experiments(platform).service
    service.put_metric({"key": "purchase", "type": "binomial", "event": "Order Completed"})
    service.put_flag({"key": "new-checkout", "default": False, "rules": []})
    _, events = demo_events(users=USERS)
    stats = post_batches(url, write_key, events)
    assert stats.rejected == 0
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        batch = [
            {"type": "track", "userId": "7", "event": "Checkout Started"},
            {"type": "track", "event": "no ids"},  # quarantined: no user or anonymous id
        ]
        assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
    assert platform.drain(timeout=60)
    install_content(platform.settings)  # the demo's placements and widgets
    run_models(platform.settings)  # every model job, embedded, on these few shoppers
    sync_service.create(
        store,
        {
            "name": "orders-to-files",
            "source": {
                "sql": "SELECT user_id, count(*) AS orders FROM events "
                "WHERE event = 'Order Completed' GROUP BY user_id"
            },
            "key": "user_id",
            "destination": "drops",
        },
    )
    wait_for(
        lambda: store.health("crm")["queue_depth"] == 0 and store.health("crm")["dead_letters"],
        "every order to be dead-lettered",
    )
    return Seeded(receiver, refuse)
