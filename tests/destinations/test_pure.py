"""The I/O-free parts: routing, signing, ordering, pacing, error classification, config checks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.destinations.config import (
    ConfigError,
    EmailSettings,
    Route,
    parse_destination,
    redacted,
)
from kirana.destinations.email_smtp import compose
from kirana.destinations.errors import (
    PermanentError,
    RetryableError,
    Throttled,
    classify_http,
    parse_retry_after,
)
from kirana.destinations.ordering import Candidate, next_due, pick_batch
from kirana.destinations.pacing import TokenBucket, backoff_delay
from kirana.destinations.records import OutboundRecord
from kirana.destinations.routing import get_path, route_event
from kirana.destinations.segment_forward import as_segment_event
from kirana.destinations.signing import sign, verify

ORDER = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u1",
    "messageId": "m1",
    "properties": {"total": 42.5, "products": [{"category": "dairy", "price": 3}]},
    "context": {"traits": {"email": "a@b.c"}},
}


# -- routing ------------------------------------------------------------------------------


def test_paths_reach_into_objects_and_lists() -> None:
    assert get_path(ORDER, "properties.products.0.category") == "dairy"
    assert get_path(ORDER, "properties.products.5.category") is None
    assert get_path(ORDER, "properties.total.x") is None


@pytest.mark.parametrize(
    ("where", "routed"),
    [
        ([{"field": "properties.total", "op": "gte", "value": 40}], True),
        ([{"field": "properties.total", "op": "lt", "value": 40}], False),
        ([{"field": "properties.total", "op": "gt", "value": "text"}], False),
        ([{"field": "properties.coupon", "op": "exists", "value": True}], False),
        ([{"field": "properties.coupon", "op": "exists", "value": False}], True),
        ([{"field": "properties.products.0.category", "op": "in", "value": ["dairy"]}], True),
        ([{"field": "context.traits.email", "op": "contains", "value": "@"}], True),
        ([{"field": "userId", "op": "ne", "value": "u1"}], False),
    ],
)
def test_conditions(where: list, routed: bool) -> None:
    route = Route(events=["Order Completed"], where=where)
    assert (route_event([route], ORDER) is not None) is routed


def test_mapping_key_and_event_filter() -> None:
    route = Route(
        events=["Order Completed"],
        mapping={
            "email": "context.traits.email",
            "amount": "properties.total",
            "src": {"const": "k"},
        },
        key="context.traits.email",
    )
    record = route_event([Route(events=["Product Viewed"]), route], ORDER)
    assert record == OutboundRecord(
        "m1", "u1", "a@b.c", "event", {"email": "a@b.c", "amount": 42.5, "src": "k"}
    )
    assert route_event([route], {**ORDER, "event": "Product Viewed"}) is None


def test_audience_events_become_entity_changes() -> None:
    entered = {
        "type": "track",
        "event": "Audience Entered",
        "userId": "u1",
        "messageId": "a1",
        "properties": {"audience": "loyal", "profile_id": "p1"},
    }
    exited = {**entered, "event": "Audience Exited", "messageId": "a2"}
    route = Route(stream="audiences", audiences=["loyal"])
    assert route_event([route], entered).action == "upsert"
    assert route_event([route], exited).action == "delete"
    assert route_event([route], exited).collection == "loyal"
    assert route_event([Route(stream="audiences", audiences=["vip"])], entered) is None
    assert route_event([route], ORDER) is None


# -- signing --------------------------------------------------------------------------------


@given(st.text(min_size=1), st.binary(), st.integers(0, 2**40))
def test_signatures_verify(secret: str, body: bytes, ts: int) -> None:
    assert verify(secret, str(ts), body, sign(secret, ts, body), now=ts)


@given(st.text(min_size=1), st.binary(min_size=1), st.integers(0, 2**40), st.data())
def test_any_changed_byte_or_timestamp_fails(secret: str, body: bytes, ts: int, data) -> None:
    signature = sign(secret, ts, body)
    i = data.draw(st.integers(0, len(body) - 1))
    tampered = body[:i] + bytes([(body[i] + 1) % 256]) + body[i + 1 :]
    assert not verify(secret, str(ts), tampered, signature, now=ts)
    assert not verify(secret, str(ts + 1), body, signature, now=ts)
    assert not verify(secret, str(ts), body, signature, now=ts + 301)  # stale


# -- ordering ---------------------------------------------------------------------------------

candidates = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 2), st.booleans()), max_size=40
).map(
    lambda rows: [
        Candidate(i, user, attempts, 0.0 if ready else 100.0)
        for i, (user, attempts, ready) in enumerate(rows)
    ]
)


@given(candidates, st.integers(1, 10))
def test_batches_keep_order_per_user(cands: list[Candidate], limit: int) -> None:
    picked = pick_batch(cands, now=50.0, limit=limit)
    by_id = {c.id: c for c in cands}
    assert picked == sorted(picked) and len(picked) <= limit
    chosen = set(picked)
    for pid in picked:
        record = by_id[pid]
        assert record.next_attempt_at <= 50.0
        earlier = [c for c in cands if c.user == record.user and c.id < pid]
        assert all(c.id in chosen for c in earlier), "a user's later record overtook an earlier one"
    if any(by_id[p].attempts for p in picked):
        assert len(picked) == 1  # a retried record travels alone
    heads = {}
    for c in cands:
        heads.setdefault(c.user, c)
    if any(h.next_attempt_at <= 50.0 for h in heads.values()):
        assert picked, "something was deliverable but nothing was picked"


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 2), st.floats(0, 100)), max_size=40),
    st.floats(0, 100),
)
def test_when_nothing_can_go_the_next_due_time_is_when_something_can(
    rows: list[tuple[str, int, float]], now: float
) -> None:
    cands = [Candidate(i, user, attempts, at) for i, (user, attempts, at) in enumerate(rows)]
    due = next_due(cands)
    if not cands:
        assert due is None
        return
    assert due is not None
    assert pick_batch(cands, now=due, limit=10), "at the due time something goes"
    if not pick_batch(cands, now=now, limit=10):
        assert due > now  # nothing could go: the wait is positive, not a busy poll
        earlier = math.nextafter(due, -math.inf)
        assert not pick_batch(cands, now=earlier, limit=10)  # and not a moment too late


# -- pacing ---------------------------------------------------------------------------------


@given(st.integers(1, 60), st.floats(0.01, 10), st.floats(1, 1000), st.floats(0, 1))
def test_backoff_grows_to_a_cap_with_bounded_jitter(attempt, base, cap, r) -> None:
    delay = backoff_delay(attempt, base, cap, rand=lambda: r)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling


@given(st.floats(0.5, 100), st.integers(1, 50), st.lists(st.floats(0, 2), min_size=1, max_size=50))
@settings(max_examples=50)
def test_token_bucket_never_exceeds_rate_plus_burst(rate, capacity, gaps) -> None:
    bucket = TokenBucket(rate, capacity, now=0.0)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.wait_time(1, now)
        now += wait
        bucket.take(1, now)
        taken += 1
    assert taken <= capacity + rate * now + 1e-6


# -- errors -------------------------------------------------------------------------------------


def test_http_answers_are_classified() -> None:
    assert classify_http(204, "", None) is None
    assert isinstance(classify_http(429, "", "3"), Throttled)
    assert classify_http(429, "", "3").retry_after == 3
    assert isinstance(classify_http(503, "", None), RetryableError)
    assert classify_http(503, "", None).outage and not classify_http(500, "", None).outage
    assert isinstance(classify_http(400, "bad", None), PermanentError)
    assert isinstance(classify_http(404, "", None), PermanentError)


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 31
    assert parse_retry_after("soon") is None


# -- configuration -------------------------------------------------------------------------------


def test_config_errors_name_the_field_and_secrets_are_masked() -> None:
    with pytest.raises(ConfigError, match=r"settings\.url"):
        parse_destination(
            {"name": "h", "kind": "webhook", "settings": {"url": "ftp://x", "secret": "s" * 20}}
        )
    with pytest.raises(ConfigError, match=r"`name`"):
        parse_destination({"name": "Bad Name", "kind": "redis"})
    with pytest.raises(ConfigError, match=r"`name`.*reserved"):
        parse_destination({"name": "status", "kind": "redis"})
    with pytest.raises(ConfigError, match=r"routes\.0\.where\.0\.op"):
        parse_destination(
            {"name": "r", "kind": "redis", "routes": [{"where": [{"field": "a", "op": "like"}]}]}
        )
    with pytest.raises(ConfigError, match=r"settings\.colour"):
        parse_destination({"name": "r", "kind": "redis", "settings": {"colour": "red"}})
    config = parse_destination(
        {
            "name": "pg",
            "kind": "postgres",
            "settings": {"dsn": "host=x password=hunter2 user=u", "table": "t"},
        }
    )
    shown = redacted(config)
    assert "hunter2" not in str(shown) and shown["settings"]["schema"] == "public"


def test_email_names_the_missing_field() -> None:
    settings = EmailSettings(from_address="a@b.c", subject="Hi $name", body="x")
    with pytest.raises(PermanentError, match="`name`"):
        compose(settings, OutboundRecord("r", "u", "u", "upsert", {"email": "x@y.z"}))
    with pytest.raises(PermanentError, match="`email`"):
        compose(settings, OutboundRecord("r", "u", "u", "upsert", {"name": "n"}))


def test_segment_forwarding_shapes() -> None:
    forwarded = {**ORDER, "receivedAt": "x", "sentAt": "y", "originalTimestamp": "z"}
    event = as_segment_event(OutboundRecord("m1", "u1", "u1", "event", forwarded), "now")
    assert event == ORDER  # unchanged but for the receipt fields the receiver sets itself
    row = as_segment_event(OutboundRecord("r1", "u1", "u1", "upsert", {"score": 1}), "now")
    assert row == {
        "type": "identify",
        "userId": "u1",
        "traits": {"score": 1},
        "messageId": "r1",
        "timestamp": "now",
    }
