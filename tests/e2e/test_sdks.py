"""The unmodified Segment and RudderStack Python SDKs, pointed at Kirana with `host`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.conftest import RunningKirana

pytestmark = pytest.mark.slow


def drive(client, n_users: int = 40) -> list[str]:
    """Send every call type; return the messageIds the SDK says it queued."""
    sent: list[str] = []
    errors: list[Exception] = []
    then = datetime.now(UTC) - timedelta(hours=1)

    def keep(result: tuple[bool, dict]) -> None:
        ok, message = result
        assert ok, message
        sent.append(message["messageId"])

    for i in range(n_users):
        user, anon = f"user-{i}", f"anon-{i}"
        keep(client.page(anonymous_id=anon, category="shop", name="Home", properties={"path": "/"}))
        keep(
            client.identify(user, {"email": f"u{i}@example.com", "plan": "free"}, anonymous_id=anon)
        )
        keep(client.alias(anon, user))
        keep(client.group(user, f"household-{i % 7}", {"size": i % 5}))
        keep(client.screen(user, "shop", "Cart", {"items": i}))
        for j in range(5):
            keep(
                client.track(
                    user,
                    "Product Added",
                    {"product_id": f"p{j}", "price": 1.25 * j},
                    timestamp=then + timedelta(seconds=j),
                )
            )
        keep(
            client.track(
                user,
                "Order Completed",
                {
                    "order_id": f"o{i}",
                    "total": 12.5,
                    "products": [{"product_id": f"p{j}", "quantity": 1} for j in range(5)],
                },
            )
        )
    client.flush()
    client.join()
    assert not errors
    return sent


def assert_landed_once(kirana: RunningKirana, sent: list[str]) -> None:
    kirana.drain()
    rows = kirana.lake("SELECT message_id, count(*) FROM events GROUP BY 1")
    counts = dict(rows)
    assert len(sent) == len(set(sent))
    assert set(counts) == set(sent)
    assert set(counts.values()) == {1}
    assert kirana.platform.store.list_quarantined() == []


def test_segment_sdk_delivers_every_event_once(kirana: RunningKirana) -> None:
    failures: list = []
    client = SegmentClient(
        kirana.write_key,
        host=kirana.url,
        gzip=True,
        on_error=lambda e, b: failures.append(e),
        upload_size=50,
    )
    sent = drive(client)
    client.shutdown()
    assert failures == []
    assert_landed_once(kirana, sent)
    library = kirana.lake("SELECT DISTINCT context->>'$.library.name' FROM events")
    assert library == [("analytics-python",)]
    # the SDK's backdated timestamps survive sentAt correction within clock tolerance
    (ahead,) = kirana.lake(
        "SELECT count(*) FROM events WHERE event = 'Product Added' "
        "AND timestamp > now() - INTERVAL 50 MINUTE"
    )[0:1]
    assert ahead == (0,)


def test_rudderstack_sdk_delivers_every_event_once(kirana: RunningKirana) -> None:
    failures: list = []
    client = RudderClient(
        kirana.write_key, host=kirana.url, on_error=lambda e, b: failures.append(e)
    )
    sent = drive(client)
    client.shutdown()
    assert failures == []
    assert_landed_once(kirana, sent)
    types = dict(kirana.lake("SELECT type, count(*) FROM events GROUP BY 1"))
    assert types == {
        "page": 40,
        "identify": 40,
        "alias": 40,
        "group": 40,
        "screen": 40,
        "track": 240,
    }
