"""The real-time evaluator gives, for every profile, the answer the compiled SQL gives."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.segments.compile import compile_audience
from kirana.segments.definitions import parse_audience
from kirana.segments.realtime import Event, ProfileState, evaluate
from tests.segments.test_audiences import NAMED, conditions
from tests.segments.test_data import NOW, Data, Ev, connect, datasets, ids


def state(data: Data, pid: str, via_json: bool = True) -> ProfileState:
    """What a real-time caller would hold: decoded traits and values, the track events."""

    def decoded(value: object) -> object:
        return json.loads(json.dumps(value)) if via_json else value

    return ProfileState(
        traits=decoded(data.profiles[pid]),
        computed_traits={n: decoded(v) for (p, n), v in data.computed.items() if p == pid},
        audiences={a for a, p in data.members if p == pid},
        events=[
            Event(e.event, e.timestamp, e.message_id, decoded(e.properties))
            for e in data.track(pid)
        ],
    )


@settings(max_examples=150, deadline=None)
@given(datasets(), conditions, st.sampled_from([NOW, NOW - timedelta(days=3, hours=5)]))
def test_realtime_agrees_with_sql_on_random_trees(data: Data, tree: dict, now) -> None:
    audience = parse_audience({"name": "generated", "conditions": tree})
    in_sql = ids(connect(data), compile_audience(audience, now))
    for pid in data.profiles:
        assert evaluate(audience, state(data, pid), now) == (pid in in_sql), pid


@settings(max_examples=25, deadline=None)
@given(datasets(max_events=40))
def test_realtime_agrees_with_sql_on_named_audiences(data: Data) -> None:
    conn = connect(data)
    for name, (tree, _) in NAMED.items():
        audience = parse_audience({"name": name, "conditions": tree})
        in_sql = ids(conn, compile_audience(audience, NOW))
        for pid in data.profiles:
            assert evaluate(audience, state(data, pid), NOW) == (pid in in_sql), (name, pid)


def _one(tree: dict, events: list[tuple[str, timedelta]], **traits: object) -> tuple[bool, bool]:
    """(realtime, SQL) membership of one profile with ``events`` at NOW - offset.

    The SQL runs in UTC and in a zone with an offset and daylight saving time: the
    compiled SQL compares instants, so the session zone must not matter.
    """
    data = Data({"p": dict(traits)})
    for i, (name, ago) in enumerate(events):
        data.events.append(Ev("p", f"m{i}", "track", name, NOW - ago, {}))
    audience = parse_audience({"name": "a", "conditions": tree})
    in_sql = set()
    for zone in ("UTC", "America/New_York"):
        conn = connect(data)
        conn.execute(f"SET TimeZone = '{zone}'")
        in_sql.add("p" in ids(conn, compile_audience(audience, NOW)))
    assert len(in_sql) == 1, "the session time zone changed the answer"
    return evaluate(audience, state(data, "p"), NOW), in_sql.pop()


H = timedelta(hours=1)
ABANDON = {"event": "Product Added", "not_followed_by": "Order Completed", "within_hours": 24}


@pytest.mark.parametrize(
    ("tree", "events", "member"),
    [
        # a window of D days is (now - D days, now]: an event exactly D days old is out
        ({"event": "E", "within_days": 30}, [("E", 30 * 24 * H)], False),
        ({"event": "E", "within_days": 30}, [("E", 30 * 24 * H - timedelta(microseconds=1))], True),
        ({"event": "E"}, [("E", -H)], False),  # events after now do not exist yet
        ({"event": "E", "at_least": 2, "at_most": 2}, [("E", H)] * 3, False),
        ({"event": 'Bob\'s "Order"'}, [('Bob\'s "Order"', H)], True),
        # the cart window must have closed: 24 h exactly is enough, 23 h is not
        (ABANDON, [("Product Added", 24 * H)], True),
        (ABANDON, [("Product Added", 23 * H)], False),
        # an order at exactly t + 24 h counts as following; at exactly t it does not
        (ABANDON, [("Product Added", 30 * H), ("Order Completed", 6 * H)], False),
        (ABANDON, [("Product Added", 30 * H), ("Order Completed", 6 * H - H)], True),
        (ABANDON, [("Product Added", 30 * H), ("Order Completed", 30 * H)], True),
        # one unfollowed add is enough, even if another add was followed
        (
            ABANDON,
            [("Product Added", 50 * H), ("Order Completed", 49 * H), ("Product Added", 30 * H)],
            True,
        ),
        ({**ABANDON, "lookback_days": 2}, [("Product Added", 48 * H)], False),
    ],
)
def test_edges(tree: dict, events: list, member: bool) -> None:
    assert _one(tree, events) == (member, member)


@pytest.mark.parametrize(
    ("condition", "traits", "member"),
    [
        ({"trait": "age", "op": "eq", "value": 5}, {"age": 5.0}, True),
        ({"trait": "age", "op": "eq", "value": 5}, {"age": "5"}, False),
        ({"trait": "age", "op": "gt", "value": 4}, {"age": "5"}, False),
        ({"trait": "flag", "op": "eq", "value": 1}, {"flag": True}, False),
        ({"trait": "plan", "op": "neq", "value": "gold"}, {}, False),
        ({"trait": "plan", "op": "neq", "value": "gold"}, {"plan": None}, False),
        ({"trait": "plan", "op": "exists", "value": False}, {"plan": None}, True),
        ({"trait": "tags", "op": "contains", "value": "vi"}, {"tags": ["vip"]}, False),
        ({"trait": "tags", "op": "contains", "value": "vi"}, {"tags": "vip"}, True),
        (
            {"trait": "address.city", "op": "in", "value": ["Pune", 3]},
            {"address": {"city": "Pune"}},
            True,
        ),
        ({"not": {"trait": "plan", "op": "eq", "value": "gold"}}, {}, True),
        # user text reaches SQL only as escaped literals
        (
            {"trait": "last-name", "op": "eq", "value": "O'Brien \\ é"},
            {"last-name": "O'Brien \\ é"},
            True,
        ),
        (
            {"trait": "$id", "op": "contains", "value": "'; DROP TABLE profiles; --"},
            {"$id": "x"},
            False,
        ),
    ],
)
def test_value_rules(condition: dict, traits: dict, member: bool) -> None:
    assert _one(condition, [], **traits) == (member, member)


def test_sql_audiences_and_naive_clocks_are_refused() -> None:
    sql = parse_audience({"name": "s", "sql": "SELECT profile_id FROM profiles"})
    with pytest.raises(ValueError, match="batch only"):
        evaluate(sql, ProfileState(), NOW)
    tree = parse_audience({"name": "t", "conditions": {"event": "E"}})
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(tree, ProfileState(), NOW.replace(tzinfo=None))
