"""Refresh order, cycles, unknown references and the events that can move an audience."""

from __future__ import annotations

import pytest

from kirana.segments.definitions import DefinitionError, parse_audience, parse_computed_trait
from kirana.segments.dependencies import (
    Dependencies,
    check_references,
    dependencies,
    event_names,
    refresh_order,
)


def aud(name: str, conditions: dict | None = None, **rest: object):
    return parse_audience({"name": name, "conditions": conditions, **rest})


def member_of(*names: str) -> dict:
    return {"or": [{"audience": n} for n in names]}


def test_dependencies_of_a_tree() -> None:
    a = aud(
        "a",
        {
            "and": [
                {"computed_trait": "orders_30d", "op": "gt", "value": 1},
                {"not": {"audience": "vip"}},
                {"or": [{"audience": "b"}, {"trait": "plan", "op": "exists"}]},
            ]
        },
    )
    assert dependencies(a) == Dependencies(frozenset({"orders_30d"}), frozenset({"vip", "b"}))
    sql = parse_audience(
        {"name": "s", "sql": "SELECT profile_id FROM profiles", "depends_on": ["vip"]}
    )
    assert dependencies(sql) == Dependencies(frozenset(), frozenset({"vip"}))


def test_refresh_order_puts_contained_audiences_first() -> None:
    audiences = [
        aud("z_top", member_of("m_mid", "a_base")),
        aud("m_mid", member_of("a_base")),
        aud("a_base", {"event": "E"}),
        aud("lonely", {"event": "E"}),
        aud("uses_deleted", member_of("gone")),
    ]
    order = refresh_order(audiences)
    assert sorted(order) == sorted(a.name for a in audiences)
    assert order.index("a_base") < order.index("m_mid") < order.index("z_top")
    assert order == refresh_order(list(reversed(audiences)))  # deterministic


def test_cycles_are_named() -> None:
    audiences = [
        aud("a", member_of("b")),
        aud("b", member_of("c")),
        aud("c", member_of("a")),
        aud("d", member_of("a")),
    ]
    with pytest.raises(DefinitionError, match="audiences form a cycle: a -> b -> c -> a"):
        refresh_order(audiences)
    sql_cycle = [
        aud("a", member_of("s")),
        parse_audience(
            {"name": "s", "sql": "SELECT profile_id FROM audience_members", "depends_on": ["a"]}
        ),
    ]
    with pytest.raises(DefinitionError, match="cycle: a -> s -> a"):
        check_references(sql_cycle, [])


def test_unknown_references_are_refused() -> None:
    with pytest.raises(DefinitionError, match='audience "a": unknown audience "ghost"'):
        check_references([aud("a", member_of("ghost"))], [])
    uses_trait = aud("a", {"computed_trait": "spend", "op": "gt", "value": 1})
    with pytest.raises(DefinitionError, match='audience "a": unknown computed trait "spend"'):
        check_references([uses_trait], ["orders"])
    spend = parse_computed_trait({"name": "spend", "aggregation": "sum", "property": "total"})
    check_references([uses_trait], [spend])


def test_event_names() -> None:
    cart = aud(
        "cart",
        {
            "and": [
                {
                    "event": "Product Added",
                    "not_followed_by": "Order Completed",
                    "within_hours": 24,
                },
                {"not": {"event": "Signed Up"}},
                {"trait": "plan", "op": "eq", "value": "gold"},
            ]
        },
    )
    assert event_names(cart) == {"Product Added", "Order Completed", "Signed Up"}
    outer = aud(
        "outer", {"or": [{"audience": "cart"}, {"computed_trait": "spend", "op": "gt", "value": 1}]}
    )
    assert event_names(outer) == frozenset()
    spend = parse_computed_trait(
        {
            "name": "spend",
            "aggregation": "sum",
            "property": "total",
            "event": ["Order Completed", "Refunded"],
        }
    )
    assert event_names(outer, audiences={"cart": cart}, computed_traits={"spend": spend}) == {
        "Product Added",
        "Order Completed",
        "Signed Up",
        "Refunded",
    }
    anything = parse_computed_trait({"name": "spend", "aggregation": "count"})
    assert event_names(outer, computed_traits={"spend": anything}) is None
    sql = parse_audience({"name": "s", "sql": "SELECT profile_id FROM profiles"})
    assert event_names(sql) is None
    assert event_names(aud("x", {"audience": "s"}), audiences={"s": sql}) is None
