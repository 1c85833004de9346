"""Erasure reaches every subsystem: model outputs and serving lists, the decision log,
experiment exposures, delivery queues and dead letters, sync snapshots — then a grep of
every byte under the data dir (SQLite files, WAL, Delta files and commit logs of every
version) finds nothing of the person, while everyone else's data is intact."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kirana.config import Settings, load_settings
from kirana.lake.catalog import connect
from kirana.models.jobs.runner import JobRunner
from kirana.serving.extension import personalization
from kirana.serving.store import ServingStore, serving_path
from tests.conftest import RunningKirana
from tests.destinations.receivers import WebhookReceiver
from tests.privacy.test_erasure import occurrences

ALICE_USER = "alice-7f3e1d"
ALICE_ANON = "anon-alice-91c2"
ALICE_EMAIL = "alice-91c2@example.com"
ALICE_MARKERS = [ALICE_USER.encode(), ALICE_ANON.encode(), b"alice-91c2"]
BOB = "bob-22aa9c"
OTHERS = [BOB] + [f"shopper-{i:02d}" for i in range(17)]
SECRET = "erasure-test-secret-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.1},
        automation={"refresh_seconds": 0.1, "decision_flush_seconds": 0.2},
        models={"k": 5, "min_pair_orders": 1},
    )


def stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def shop_history() -> list[dict]:
    """Four orders each for Alice (first as a visitor) and 18 others, from 12 products."""
    start = datetime.now(UTC) - timedelta(days=60)
    events: list[dict] = [
        {"type": "page", "anonymousId": ALICE_ANON, "name": "Home", "timestamp": stamp(start)},
        {
            "type": "identify",
            "anonymousId": ALICE_ANON,
            "userId": ALICE_USER,
            "traits": {"email": ALICE_EMAIL, "name": "Alice"},
        },
    ]
    for n, user in enumerate([ALICE_USER, *OTHERS]):
        if user != ALICE_USER:
            events.append({"type": "identify", "userId": user, "traits": {"plan": "basic"}})
        for order in range(4):
            products = [f"p{(n + order + k) % 12:02d}" for k in range(3)]
            events.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": user,
                    "timestamp": stamp(start + timedelta(days=10 * order + n % 5)),
                    "properties": {
                        "order_id": f"o-{n}-{order}",
                        "total": 10.0 + order,
                        "products": [{"product_id": p, "price": 2.5} for p in products],
                    },
                }
            )
    return events


def webhook(name: str, url: str, types: list[str]) -> dict:
    return {
        "name": name,
        "kind": "webhook",
        "settings": {"url": url, "secret": SECRET},
        "routes": [{"types": types}],
        "max_attempts": 1,
        "backoff_seconds": 0.05,
        "backoff_max_seconds": 0.1,
    }


CONTENT = {
    "widgets": [
        {"key": "again", "kind": "buy_again", "max_items": 3},
        {"key": "for-you", "kind": "recommended_for_you", "max_items": 3},
    ],
    "placements": [{"key": "home", "max_widgets": 2, "widgets": ["again", "for-you"]}],
}


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def holders(data_dir: Path) -> set[str]:
    """The top-level stores (state file, lake table, log) that mention Alice."""
    found = set()
    for hit in occurrences(data_dir, ALICE_MARKERS):
        path = Path(hit.split(":")[0])
        found.add("/".join(path.parts[:2]))
    return found


def test_erasure_reaches_every_subsystem(kirana_any: RunningKirana) -> None:
    k = kirana_any
    admin = {"Authorization": f"Bearer {k.admin_token}"}
    writer = {"X-Write-Key": k.write_key}
    ok = WebhookReceiver()
    refusing = WebhookReceiver(lambda batch: (400, {}))
    http = k.client()
    try:
        for name, receiver, types in (
            ("hook-ok", ok, ["track", "identify", "page"]),
            ("hook-dead", refusing, ["identify"]),
        ):
            hook = webhook(name, receiver.url, types)
            made = http.post("/v1/destinations", json=hook, headers=admin)
            assert made.status_code == 201, made.text
        sent = http.post("/v1/batch", json={"batch": shop_history()}, headers=writer)
        assert sent.status_code == 200 and not sent.json().get("rejected"), sent.text
        k.drain()

        # model outputs (two versions of buy_again) and their serving lists
        runner = JobRunner(k.settings)
        try:
            for job in ("buy_again", "recommended_for_you", "buy_again"):
                run = runner.run(job)
                assert run.status == "succeeded", run.error
        finally:
            runner.close()
        serving = ServingStore(serving_path(k.settings.state_dir))
        assert serving.recommendations("buy_again", ALICE_USER)
        serving.close()

        # an exposure, a logged decision, a sync snapshot
        experiment = {"key": "checkout", "variations": [{"key": "a"}, {"key": "b"}]}
        assert http.post("/v1/experiments", json=experiment, headers=admin).status_code == 201
        assert http.post("/v1/experiments/checkout/start", headers=admin).status_code == 200
        assert http.post("/v1/content/import", json=CONTENT, headers=admin).status_code == 200
        for user in (ALICE_USER, BOB):
            assigned = http.post("/v1/experiments/assign", json={"userId": user}, headers=writer)
            assert assigned.json()["assignments"][0]["logged"], assigned.text
            feed = http.get(
                "/v1/personalize", params={"placement": "home", "userId": user}, headers=writer
            )
            assert feed.status_code == 200, feed.text
        personalization(k.platform).decisions.flush()
        sync = {
            "name": "order-counts",
            "source": {
                "sql": "SELECT user_id, count(*) AS orders FROM events "
                "WHERE event = 'Order Completed' GROUP BY user_id"
            },
            "key": "user_id",
            "destination": "hook-ok",
        }
        assert http.post("/v1/syncs", json=sync, headers=admin).status_code == 201
        ran = http.post("/v1/syncs/order-counts/run", headers=admin)
        assert ran.status_code == 200 and ran.json()["added"] == 1 + len(OTHERS), ran.text
        k.drain()
        wait_for(
            lambda: any(r["key"] == ALICE_USER and r["collection"] for r in ok.accepted),
            "the sync's row for Alice to be delivered",
        )
        dead = wait_for(
            lambda: http.get("/v1/destinations/hook-dead/dead-letters", headers=admin).json(),
            "dead letters",
        )
        assert dead

        data_dir = k.settings.data_dir
        before = holders(data_dir)
        for store in (
            "lake/model_buy_again",
            "lake/model_recommended_for_you",
            "lake/decisions",
            "lake/events",
            "state/serving.sqlite",
            "state/experiments.sqlite",
            "state/delivery.sqlite",
            "state/profiles.sqlite",
            "state/syncs",
        ):
            assert any(h.startswith(store) for h in before), f"{store} must hold Alice: {before}"

        response = http.post(
            "/v1/privacy/erasures", json={"identifier": ALICE_EMAIL}, headers=admin
        )
        assert response.status_code == 200, response.text
        details = response.json()["details"]
        assert details["models"]["output_rows"] >= 2 * 3
        assert details["models"]["serving_lists"] == 2
        assert details["serving"]["decision_rows"] == 1
        assert details["experiments"]["exposures"] == 1
        assert details["syncs"]["snapshot_rows"] == 1
        assert details["destinations"]["records"] > 0
        assert occurrences(data_dir, ALICE_MARKERS) == []

        # twice is harmless: the identifier is suppressed, so it reruns and finds nothing
        again = http.post("/v1/privacy/erasures", json={"identifier": ALICE_EMAIL}, headers=admin)
        assert again.status_code == 200, again.text
        assert again.json()["profile_id"] is None
        assert all(not any(c.values()) for c in again.json()["details"].values()), again.text

        # she comes back: served, but no decision, exposure or event is kept
        assigned = http.post("/v1/experiments/assign", json={"userId": ALICE_USER}, headers=writer)
        assert assigned.status_code == 200 and not assigned.json()["assignments"][0]["logged"]
        params = {"placement": "home", "userId": ALICE_USER}
        assert http.get("/v1/personalize", params=params, headers=writer).status_code == 200
        personalization(k.platform).decisions.flush()
        k.drain()
        assert occurrences(data_dir, ALICE_MARKERS) == []

        # everyone else is intact
        serving = ServingStore(serving_path(k.settings.state_dir))
        assert serving.recommendations("buy_again", BOB)
        serving.close()
        lake = connect(k.settings.lake_dir)
        customers = lake.sql("SELECT count(DISTINCT user_id) FROM model_buy_again").fetchall()
        assert customers == [(len(OTHERS),)]
        assert lake.sql("SELECT user_key FROM decisions").fetchall() == [(f"u:{BOB}",)]
        orders = lake.sql("SELECT count(*) FROM events WHERE event = 'Order Completed'")
        assert orders.fetchall() == [(4 * len(OTHERS),)]
        bob = http.get(f"/v1/profiles/{BOB}", headers=admin)
        assert bob.status_code == 200 and bob.json()["traits"] == {"plan": "basic"}
    finally:
        http.close()
        ok.close()
        refusing.close()
