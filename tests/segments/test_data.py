"""Generated segment data and the four relations built from it in DuckDB.

Shared by the segment tests (imported as ``tests.segments.test_data``); its own
tests check that the relations have the contract's schema and round-trip the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
EVENTS = ("Order Completed", "Product Added", "Page Viewed")
CATEGORIES = ("dairy", "bakery", "produce")
AUDIENCES = ("vip", "churned")

# values chosen so that the interesting comparisons happen: "5" vs 5, 5 vs 5.0, "" ...
STRINGS = ("gold", "silver", "platinum", "5", "", "dairy", "a'b")
NUMBERS = (0, 5, 5.0, 10, -1, 2.5, 100, 18446744073709551615, 0.1)
SCALARS = STRINGS + NUMBERS + (True, False)


@dataclass(frozen=True)
class Ev:
    profile_id: str
    message_id: str
    type: str
    event: str | None
    timestamp: datetime
    properties: dict[str, Any]


@dataclass
class Data:
    profiles: dict[str, dict[str, Any]]  # profile_id -> traits
    events: list[Ev] = field(default_factory=list)
    computed: dict[tuple[str, str], Any] = field(default_factory=dict)  # (pid, name) -> value
    members: set[tuple[str, str]] = field(default_factory=set)  # (audience, pid)

    def track(self, profile_id: str) -> list[Ev]:
        return [e for e in self.events if e.profile_id == profile_id and e.type == "track"]


_DATABASE = duckdb.connect(config={"threads": 1})


def connect(data: Data) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the four relations of the segment contract."""
    conn = _DATABASE.cursor()  # a new connection (opening a database costs ~20 ms)
    conn.execute("SET TimeZone = 'UTC'")
    string = pa.string()
    tables = {
        "profiles": pa.table(
            {
                "profile_id": pa.array(list(data.profiles), string),
                "traits": pa.array([json.dumps(t) for t in data.profiles.values()], string),
            }
        ),
        "profile_events": pa.table(
            {
                "profile_id": pa.array([e.profile_id for e in data.events], string),
                "message_id": pa.array([e.message_id for e in data.events], string),
                "type": pa.array([e.type for e in data.events], string),
                "event": pa.array([e.event for e in data.events], string),
                "timestamp": pa.array(
                    [e.timestamp for e in data.events], pa.timestamp("us", tz="UTC")
                ),
                "properties": pa.array([json.dumps(e.properties) for e in data.events], string),
            }
        ),
        "computed_traits": pa.table(
            {
                "profile_id": pa.array([k[0] for k in data.computed], string),
                "name": pa.array([k[1] for k in data.computed], string),
                "value": pa.array([json.dumps(v) for v in data.computed.values()], string),
            }
        ),
        "audience_members": pa.table(
            {
                "audience": pa.array([m[0] for m in sorted(data.members)], string),
                "profile_id": pa.array([m[1] for m in sorted(data.members)], string),
            }
        ),
    }
    for name, table in tables.items():
        conn.register(name, table)  # as the platform does (relations.py registers Arrow too)
    return conn


def ids(conn: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> set[str]:
    return {r[0] for r in conn.execute(sql, params).fetchall()}


# -- strategies ---------------------------------------------------------------------------

scalars = st.sampled_from(SCALARS)
json_values = st.recursive(
    st.one_of(scalars, st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=4,
)

# offsets around the window edges the conditions use, and anywhere in 40 days
_EDGES = [timedelta(days=d) for d in (1, 7, 30)] + [timedelta(hours=h) for h in (1, 1.5, 24)]
offsets = st.one_of(
    st.sampled_from(
        [d + delta for d in _EDGES for delta in (timedelta(0), timedelta(microseconds=1))]
    ),
    st.integers(-3600, 40 * 86400).map(lambda s: timedelta(seconds=s)),
)

products = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "category": st.sampled_from(CATEGORIES) | scalars,
            "price": st.sampled_from(NUMBERS) | scalars,
            "quantity": st.integers(1, 3),
        },
    ),
    max_size=3,
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "total": st.sampled_from(NUMBERS) | scalars | st.none(),
        "category": st.sampled_from(CATEGORIES) | scalars,
        "products": products | json_values,
        "coupon": st.booleans(),
    },
)


def often(value: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = scalars) -> Any:
    """Mostly ``value``, sometimes an odd JSON value, sometimes null."""
    return st.one_of(value, value, value, odd, st.none())


TRAITS = {
    "plan": often(st.sampled_from(("gold", "silver", "platinum")), json_values),
    "age": often(st.sampled_from((5, 10, 2.5, 100))),
    "email": often(st.sampled_from(("a@example.com", ""))),
    "tags": often(st.lists(st.sampled_from(("vip", "new", 5, True)), max_size=3)),
    "address": often(st.fixed_dictionaries({}, optional={"city": st.sampled_from(STRINGS)})),
}
COMPUTED_VALUES = {
    "orders_30d": often(st.integers(0, 4)),
    "total_spend": often(st.sampled_from(NUMBERS)),
    "fav_department": often(st.sampled_from(CATEGORIES)),
    "days_since_last_order": often(st.integers(0, 60)),
}


@st.composite
def traits(draw: st.DrawFn) -> dict[str, Any]:
    return {k: draw(v) for k, v in TRAITS.items() if draw(st.integers(0, 4))}


@st.composite
def datasets(draw: st.DrawFn, max_profiles: int = 6, max_events: int = 30) -> Data:
    n = draw(st.integers(1, max_profiles))
    max_events = draw(st.integers(0, max_events))
    pids = [f"p{i}" for i in range(n)]
    data = Data({pid: draw(traits()) for pid in pids})
    for i in range(max_events):
        # a few orphans (no profile) and non-track events must never count
        pid = draw(st.sampled_from([*pids, "orphan"]) if i % 7 == 6 else st.sampled_from(pids))
        kind = draw(st.sampled_from(("track",) * 6 + ("page", "identify")))
        moment = NOW - draw(offsets)
        if i and draw(st.integers(0, 4)) == 0:  # same instant as an earlier event: ties
            moment = data.events[-1].timestamp
        data.events.append(
            Ev(
                pid,
                f"m{draw(st.integers(0, 99)):02d}{i:03d}",
                kind,
                draw(st.sampled_from(EVENTS)),
                moment,
                draw(properties),
            )
        )
    for pid in pids:
        for name, values in COMPUTED_VALUES.items():
            if draw(st.integers(0, 3)):
                data.computed[(pid, name)] = draw(values)
        for audience in AUDIENCES:
            if draw(st.booleans()):
                data.members.add((audience, pid))
    return data


# -- the module's own tests ------------------------------------------------------------------


def test_relations_have_the_contract_schema() -> None:
    conn = connect(Data({"p0": {"plan": "gold"}}))
    schema = {
        table: [tuple(r[:2]) for r in conn.execute(f"DESCRIBE {table}").fetchall()]
        for table in ("profile_events", "profiles", "computed_traits", "audience_members")
    }
    assert schema == {
        "profile_events": [
            ("profile_id", "VARCHAR"),
            ("message_id", "VARCHAR"),
            ("type", "VARCHAR"),
            ("event", "VARCHAR"),
            ("timestamp", "TIMESTAMP WITH TIME ZONE"),
            ("properties", "VARCHAR"),
        ],
        "profiles": [("profile_id", "VARCHAR"), ("traits", "VARCHAR")],
        "computed_traits": [("profile_id", "VARCHAR"), ("name", "VARCHAR"), ("value", "VARCHAR")],
        "audience_members": [("audience", "VARCHAR"), ("profile_id", "VARCHAR")],
    }


@settings(max_examples=20, deadline=None)
@given(datasets())
def test_relations_round_trip_the_generated_data(data: Data) -> None:
    conn = connect(data)
    rows = conn.execute(
        "SELECT profile_id, message_id, type, event, timestamp, properties FROM profile_events"
    ).fetchall()
    assert sorted((r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows) == sorted(
        (e.profile_id, e.message_id, e.type, e.event, e.timestamp, e.properties)
        for e in data.events
    )
    traits = dict(conn.execute("SELECT profile_id, traits FROM profiles").fetchall())
    assert {k: json.loads(v) for k, v in traits.items()} == data.profiles
