"""Property: the profile consumer's fast lane (head-only decode for plain events) builds
exactly the profiles the whole-event path builds, in any arrival order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.consumers.profiles import ProfileConsumer
from kirana.eventlog.protocol import LogRecord
from kirana.eventlog.records import event_record
from kirana.identity.engine import IdentityResolver
from kirana.identity.sqlite_store import SQLiteProfileStore
from tests.identity.test_order_independence import run, snapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)
IDS = st.sampled_from(["u1", "u2", "u3", "", "null", "anonymous", "0"])


@st.composite
def events(draw: st.DrawFn) -> list[dict]:
    out = []
    for i in range(draw(st.integers(1, 30))):
        event: dict = {
            "type": draw(
                st.sampled_from(["track", "page", "screen", "group", "identify", "alias"])
            ),
            "messageId": f"m{i:03d}",
            "timestamp": (T0 + timedelta(minutes=draw(st.integers(0, 40)))).isoformat(),
            "event": "Product Viewed",
        }
        if draw(st.booleans()):
            event["userId"] = draw(IDS)
        if draw(st.booleans()) or "userId" not in event:
            event["anonymousId"] = draw(st.sampled_from(["a1", "a2", "a3", "-1"]))
        if event["type"] == "alias":
            event["previousId"] = draw(st.sampled_from(["a1", "a4"]))
        context = draw(
            st.sampled_from(
                [
                    None,
                    {"library": {"name": "x"}},
                    {"traits": {"email": "P@x.io"}},
                    {"device": {"id": "d1"}},
                    {"page": {"title": "no traits here"}},
                ]
            )
        )
        if context is not None:
            event["context"] = context
        if event["type"] in ("identify", "group") and draw(st.booleans()):
            event["traits"] = {"email": draw(st.sampled_from(["p@x.io", "q@x.io"])), "plan": "gold"}
        out.append(event)
    return out


def through_consumer(evs: list[dict], path: Path) -> set:
    store = SQLiteProfileStore(path)
    consumer = ProfileConsumer(_NoLog(), store, IdentityResolver(store))
    records = [LogRecord(i, event_record(e)) for i, e in enumerate(evs)]
    consumer.handle(records, len(records))
    result = snapshot(store, evs)
    store.close()
    return result


class _NoLog:
    start_offset = 0


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(evs=events(), data=st.data())
def test_fast_lane_matches_the_whole_event_path(
    evs: list[dict], data: st.DataObject, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex
    expected = run(evs, tmp_path / f"{tag}-r.sqlite")
    assert through_consumer(evs, tmp_path / f"{tag}-c.sqlite") == expected
    shuffled = data.draw(st.permutations(evs))
    assert through_consumer(shuffled, tmp_path / f"{tag}-s.sqlite") == expected


def test_plain_track_events_take_the_fast_lane(tmp_path: Path) -> None:
    """The lane is used (not just correct): a known pair resolves without the full decode."""
    store = SQLiteProfileStore(tmp_path / "p.sqlite")
    consumer = ProfileConsumer(_NoLog(), store, IdentityResolver(store))
    full = 0
    decode = consumer._decoder.decode

    def counting(raw: bytes) -> object:
        nonlocal full
        full += 1
        return decode(raw)

    consumer._decoder = type("D", (), {"decode": staticmethod(counting)})()  # type: ignore[assignment]
    plain = {
        "type": "track",
        "event": "X",
        "userId": "u1",
        "anonymousId": "a1",
        "timestamp": T0.isoformat(),
        "properties": {"p": 1},
    }
    with_traits = {**plain, "context": {"traits": {"email": "x@y.io"}}}
    evs = [{**plain, "messageId": f"m{i}"} for i in range(5)] + [{**with_traits, "messageId": "t"}]
    consumer.handle([LogRecord(i, event_record(e)) for i, e in enumerate(evs)], len(evs))
    assert full == 1  # only the event with context traits was decoded whole
    assert (
        store.profile(("email", "x@y.io")).identities == store.profile(("user_id", "u1")).identities
    )
    store.close()


def test_events_a_realtime_audience_wants_take_the_whole_event_path(tmp_path: Path) -> None:
    from kirana.profiles.realtime import RealtimeAudiences

    store = SQLiteProfileStore(tmp_path / "p.sqlite")
    realtime = RealtimeAudiences(store, lambda events: None, reload_every=0)
    assert not realtime.wants("track", "Order Completed")  # no audiences: nothing wanted
    loyal = {
        "name": "loyal",
        "conditions": {"event": "Order Completed", "at_least": 2, "within_days": 30},
    }
    store.save_definition("audience", "loyal", loyal)
    assert realtime.wants("track", "Order Completed")
    assert realtime.wants("identify", None)  # traits may change any membership
    assert not realtime.wants("track", "Product Viewed")
    assert not realtime.wants("page", None)
    store.close()
