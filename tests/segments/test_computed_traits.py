"""Computed traits: each aggregation by hand on fixed data, then all of them vs a reference."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.segments.compile import compile_computed_trait
from kirana.segments.definitions import AGGREGATIONS, parse_computed_trait
from tests.segments.test_audiences import ABSENT, FILTER_VALUES, holds, op_value, passes
from tests.segments.test_data import EVENTS, NOW, Data, Ev, connect, datasets

DAY = timedelta(days=1)
OC = "Order Completed"


def fixed() -> Data:
    data = Data({"ann": {}, "bob": {}, "cat": {}})
    rows = [
        (
            "ann",
            "a1",
            OC,
            2 * DAY,
            {
                "total": 30,
                "products": [
                    {"category": "dairy", "price": 2.5, "quantity": 2},
                    {"category": "bakery", "price": 4},
                ],
            },
        ),
        (
            "ann",
            "a2",
            OC,
            10 * DAY,
            {"total": 12.5, "products": [{"category": "dairy", "price": 3}]},
        ),
        (
            "ann",
            "a3",
            OC,
            40 * DAY,
            {"total": 100, "products": [{"category": "produce", "price": 1}]},
        ),
        ("ann", "a4", "Product Added", DAY, {"category": "bakery"}),
        ("ann", "a0", OC, 2 * DAY, {"total": "7"}),  # same instant as a1; a string total
        (
            "bob",
            "b1",
            OC,
            5 * DAY + 23 * timedelta(hours=1),
            {"total": 5, "products": [{"category": "bakery"}, {"category": "dairy"}]},
        ),
    ]
    data.events = [Ev(p, m, "track", e, NOW - ago, props) for p, m, e, ago, props in rows]
    # not a track event: never counts, whatever its name
    data.events.append(Ev("bob", "b2", "page", OC, NOW - DAY, {"total": 1000}))
    return data


def run(definition: dict[str, Any], data: Data, now: datetime = NOW) -> dict[str, Any]:
    trait = parse_computed_trait({"name": "t", **definition})
    rows = connect(data).execute(compile_computed_trait(trait, now)).fetchall()
    assert len(rows) == len({r[0] for r in rows}), "one row per profile"
    return {pid: json.loads(value) for pid, value in rows}


DAIRY = [{"property": "products[].category", "op": "eq", "value": "dairy"}]
CASES = [
    ({"aggregation": "count", "event": OC, "window_days": 30}, {"ann": 3, "bob": 1, "cat": 0}),
    ({"aggregation": "count"}, {"ann": 5, "bob": 1, "cat": 0}),
    (
        {"aggregation": "count", "event": [OC, "Product Added"], "window_days": 2},
        {"ann": 1, "bob": 0, "cat": 0},
    ),
    ({"aggregation": "sum", "event": OC, "property": "total"}, {"ann": 142.5, "bob": 5}),
    (
        {"aggregation": "sum", "event": OC, "property": "total", "window_days": 7},
        {"ann": 30, "bob": 5},
    ),
    ({"aggregation": "min", "event": OC, "property": "total"}, {"ann": 12.5, "bob": 5}),
    ({"aggregation": "max", "event": OC, "property": "total"}, {"ann": 100, "bob": 5}),
    ({"aggregation": "max", "property": "products[].price"}, {"ann": 4}),
    (
        {"aggregation": "first", "event": OC, "property": "products[].category"},
        {"ann": "produce", "bob": "bakery"},
    ),
    (
        {"aggregation": "last", "event": OC, "property": "products[].category"},
        {"ann": "bakery", "bob": "dairy"},
    ),
    (
        {"aggregation": "first", "event": OC, "property": "total", "window_days": 7},
        {"ann": "7", "bob": 5},
    ),  # a0 and a1 share a timestamp: message_id a0 comes first
    (
        {"aggregation": "last", "event": OC, "property": "total", "window_days": 7},
        {"ann": 30, "bob": 5},
    ),
    (
        {"aggregation": "most_frequent", "property": "products[].category"},
        {"ann": "dairy", "bob": "bakery"},
    ),  # bob: a tie, the smallest value wins
    ({"aggregation": "most_frequent", "property": "category"}, {"ann": "bakery"}),
    (
        {"aggregation": "distinct_count", "property": "products[].category"},
        {"ann": 3, "bob": 2, "cat": 0},
    ),
    ({"aggregation": "days_since_last", "event": OC}, {"ann": 2, "bob": 5}),
    ({"aggregation": "days_since_last"}, {"ann": 1, "bob": 5}),
    (
        {
            "aggregation": "count",
            "event": OC,
            "where": [{"property": "total", "op": "gt", "value": 20}],
        },
        {"ann": 2, "bob": 0, "cat": 0},
    ),
    ({"aggregation": "sum", "property": "products[].price", "where": DAIRY}, {"ann": 5.5}),
    (
        {"aggregation": "count", "property": "products[]", "where": DAIRY},
        {"ann": 2, "bob": 1, "cat": 0},
    ),
    ({"aggregation": "count", "event": OC, "where": DAIRY}, {"ann": 2, "bob": 1, "cat": 0}),
    ({"aggregation": "sum", "property": "products[].quantity"}, {"ann": 2}),
]


@pytest.mark.parametrize(("definition", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_aggregations_on_fixed_data(definition: dict, expected: dict) -> None:
    assert run(definition, fixed()) == expected


def test_sum_keeps_integers_exact_and_doubles_as_doubles() -> None:
    data = fixed()
    trait = parse_computed_trait(
        {"name": "t", "aggregation": "sum", "property": "total", "event": OC, "window_days": 7}
    )
    rows = dict(connect(data).execute(compile_computed_trait(trait, NOW)).fetchall())
    assert rows == {"ann": "30", "bob": "5"}
    big = Data({"p": {}}, [Ev("p", f"m{i}", "track", OC, NOW, {"total": 2**63}) for i in range(4)])
    assert run({"aggregation": "sum", "property": "total"}, big) == {"p": 2**65}


def test_days_since_last_is_whole_days_and_follows_the_clock() -> None:
    assert run(
        {"aggregation": "days_since_last", "event": OC}, fixed(), NOW + 12 * timedelta(hours=1)
    ) == {"ann": 2, "bob": 6}
    # events after now do not exist yet
    assert run({"aggregation": "days_since_last"}, fixed(), NOW - 3 * DAY) == {"ann": 7, "bob": 2}


# -- against a Python reference ---------------------------------------------------------------


def get(obj: Any, path: str) -> Any:
    for key in [k for k in path.split(".") if k]:
        if not isinstance(obj, dict) or key not in obj:
            return ABSENT
        obj = obj[key]
    return ABSENT if obj is None else obj


def text(value: Any) -> str:
    """The JSON text DuckDB writes for the generated values (no exponent floats in them)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def reference(d: dict[str, Any], data: Data, now: datetime) -> dict[str, Any]:
    names = d.get("event")
    names = None if names is None else [names] if isinstance(names, str) else names
    start = now - timedelta(days=d.get("window_days", 10**5))
    prop = d.get("property")
    items: dict[str, list[tuple[Any, ...]]] = {p: [] for p in data.profiles}
    for e in data.events:
        if e.type != "track" or not start < e.timestamp <= now or e.profile_id not in items:
            continue
        if names is not None and e.event not in names:
            continue
        flat = [f for f in d.get("where", []) if "[]" not in f["property"]]
        if prop is None or "[]" not in prop:
            if passes(e.properties, d.get("where", [])):
                value = None if prop is None else get(e.properties, prop)
                items[e.profile_id].append((e.timestamp, e.message_id, 0, value))
            continue
        if not passes(e.properties, flat):
            continue
        head, tail = prop.split("[]")
        array = get(e.properties, head)
        for i, el in enumerate(array if isinstance(array, list) else [], start=1):
            nested = [f for f in d.get("where", []) if "[]" in f["property"]]
            if all(holds(get(el, f["property"].split("[]")[1]), f) for f in nested):
                items[e.profile_id].append((e.timestamp, e.message_id, i, get(el, tail)))
    if prop is not None:
        items = {p: [i for i in xs if i[3] is not ABSENT] for p, xs in items.items()}
    agg, out = d["aggregation"], {}
    for pid, xs in items.items():
        values = [x[3] for x in sorted(xs, key=lambda x: x[:3])]
        numbers = [v for v in values if isinstance(v, int | float) and type(v) is not bool]
        if agg == "count":
            out[pid] = len(values)
        elif agg == "distinct_count":
            out[pid] = len({text(v) for v in values})
        elif agg in ("sum", "min", "max") and numbers:
            if agg == "sum":
                exact = all(isinstance(v, int) for v in numbers)
                out[pid] = sum(numbers) if exact else math.fsum(float(v) for v in numbers)
            else:
                out[pid] = (min if agg == "min" else max)(numbers, key=float)
        elif agg in ("first", "last") and values:
            out[pid] = values[0] if agg == "first" else values[-1]
        elif agg == "most_frequent" and values:
            counts = Counter(text(v) for v in values)
            out[pid] = json.loads(min(counts, key=lambda k: (-counts[k], k)))
        elif agg == "days_since_last" and xs:
            out[pid] = (now - max(x[0] for x in xs)) // timedelta(days=1)
    return out


PROPERTIES = (
    "total",
    "category",
    "coupon",
    "products",
    "products[]",
    "products[].category",
    "products[].price",
    "products[].quantity",
)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    agg = draw(st.sampled_from(AGGREGATIONS))
    d: dict[str, Any] = {"aggregation": agg}
    if agg not in ("count", "days_since_last") or draw(st.booleans()):
        d["property"] = draw(st.sampled_from(PROPERTIES))
    event = draw(
        st.none()
        | st.sampled_from(EVENTS)
        | st.lists(st.sampled_from(EVENTS), min_size=1, max_size=2, unique=True)
    )
    if event is not None:
        d["event"] = event
    if draw(st.booleans()):
        d["window_days"] = draw(st.sampled_from((1, 7, 30)))
    paths = sorted(FILTER_VALUES)
    d["where"] = [
        {"property": (p := draw(st.sampled_from(paths))), **draw(op_value(FILTER_VALUES[p]))}
        for _ in range(draw(st.integers(0, 2)))
    ]
    return d


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return text(a) == text(b)


@settings(max_examples=200, deadline=None)
@given(datasets(max_events=40), definitions(), st.sampled_from([NOW, NOW - 2 * DAY]))
def test_computed_traits_match_a_python_reference(data: Data, d: dict, now: datetime) -> None:
    got, expected = run(d, data, now), reference(d, data, now)
    assert got.keys() == expected.keys()
    for pid, value in expected.items():
        if d["aggregation"] in ("min", "max"):
            assert float(got[pid]) == float(value), pid
        else:
            assert same(got[pid], value), (pid, got[pid], value)
