"""Profile timelines read by active day equal a scan of the whole lake, for any history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from kirana.profiles.timeline import timeline_of
from kirana.profiles.view import find_profile, latest_events
from tests.conftest import RunningKirana

USERS = [f"u{i}" for i in range(6)]
ANONS = [f"a{i}" for i in range(8)]


def random_history(seed: int, n: int = 240) -> list[dict]:
    """Events over ~60 days, several on the same instant and day, signed in or not,
    shared devices (one anonymous id seen with two users), and identify calls."""
    rng = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        when = start + timedelta(days=rng.randrange(60), hours=rng.choice([0, 5, 23]))
        user = rng.choice([*USERS, None, None])
        anon = rng.choice([*ANONS, None]) if user else rng.choice(ANONS)
        event = {
            "type": rng.choice(["track", "track", "page", "identify"]),
            "messageId": f"m{seed}-{i:04d}",
            "timestamp": when.isoformat().replace("+00:00", "Z"),
        }
        if event["type"] == "track":
            event["event"] = "Product Viewed"
            event["properties"] = {"i": i}
        if user:
            event["userId"] = user
        if anon:
            event["anonymousId"] = anon
        events.append(event)
    return events


def oracle(events: list[dict], users: set[str], anons: set[str], limit: int) -> list[str]:
    """The newest ``limit`` message ids of the profile, as the lake scan defines them."""
    mine = [
        e
        for e in events
        if e.get("userId") in users or ("userId" not in e and e.get("anonymousId") in anons)
    ]
    mine.sort(key=lambda e: e["messageId"])
    mine.sort(key=lambda e: e["timestamp"], reverse=True)
    return [e["messageId"] for e in mine[:limit]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_timeline_by_active_days_equals_the_newest_events(kirana: RunningKirana, seed: int) -> None:
    events = random_history(seed)
    with kirana.client() as http:
        answer = http.post("/v1/batch", json={"batch": events}, auth=(kirana.write_key, ""))
        assert answer.status_code == 200 and answer.json()["accepted"] == len(events)
    kirana.drain()
    store, lake = kirana.platform.profiles, kirana.settings.lake_dir
    rng = random.Random(seed)
    seen_profiles = set()
    for identifier in [("user_id", u) for u in USERS] + [("anonymous_id", a) for a in ANONS]:
        profile = store.profile(identifier)
        if profile is None or profile.profile_id in seen_profiles:
            continue
        seen_profiles.add(profile.profile_id)
        users = {v for t, v in profile.identities if t == "user_id"}
        anons = {v for t, v in profile.identities if t == "anonymous_id"}
        assert store.event_days(sorted(profile.identities)), "the consumer recorded no days"
        for limit in [1, 3, rng.randrange(1, 80), 500]:
            by_days = [e["message_id"] for e in latest_events(lake, profile, limit, store)]
            assert by_days == oracle(events, users, anons, limit), (identifier, limit)
            full_scan = timeline_of(lake).latest(sorted(users), sorted(anons), None, limit)
            assert [e["message_id"] for e in full_scan] == by_days
    assert len(seen_profiles) >= 3


def test_profile_view_has_event_fields_and_properties(kirana: RunningKirana) -> None:
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-props",
        "messageId": "props-1",
        "properties": {"total": 12.5, "products": [{"product_id": "p1"}]},
        "timestamp": "2026-11-02T08:00:00Z",
    }
    with kirana.client() as http:
        assert http.post("/v1/track", json=event, auth=(kirana.write_key, "")).status_code == 200
    kirana.drain()
    view = find_profile(kirana.platform.profiles, kirana.settings.lake_dir, "u-props", None, 5)
    assert view is not None
    [latest] = view.latest_events
    assert latest == {
        "message_id": "props-1",
        "type": "track",
        "event": "Order Completed",
        "user_id": "u-props",
        "timestamp": "2026-11-02T08:00:00+00:00",
        "properties": {"total": 12.5, "products": [{"product_id": "p1"}]},
    }
