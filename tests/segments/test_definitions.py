"""Definitions: good ones parse to typed structs, bad ones are refused naming the wrong part."""

from __future__ import annotations

from typing import Any

import pytest

from kirana.segments.definitions import (
    And,
    Audience,
    ComputedTrait,
    DefinitionError,
    NotFollowedBy,
    Performed,
    TraitIs,
    parse_audience,
    parse_computed_trait,
)

DEMO_TRAITS = [
    {"name": "orders_30d", "aggregation": "count", "event": "Order Completed", "window_days": 30},
    {"name": "total_spend", "aggregation": "sum", "event": "Order Completed", "property": "total"},
    {
        "name": "favourite_department",
        "aggregation": "most_frequent",
        "event": "Order Completed",
        "property": "products[].category",
    },
    {"name": "days_since_last_order", "aggregation": "days_since_last", "event": "Order Completed"},
]
DEMO_AUDIENCES = [
    {
        "name": "loyal",
        "description": "at least 3 orders in 30 days",
        "conditions": {"event": "Order Completed", "at_least": 3, "within_days": 30},
    },
    {
        "name": "cart_abandoners",
        "conditions": {
            "event": "Product Added",
            "not_followed_by": "Order Completed",
            "within_hours": 24,
            "lookback_days": 7,
        },
    },
    {
        "name": "lapsed",
        "conditions": {"computed_trait": "days_since_last_order", "op": "gt", "value": 30},
    },
    {
        "name": "gold_not_loyal",
        "conditions": {
            "and": [{"trait": "plan", "op": "eq", "value": "gold"}, {"not": {"audience": "loyal"}}]
        },
    },
    {
        "name": "by_sql",
        "sql": "WITH o AS (SELECT profile_id FROM profile_events) "
        "SELECT profile_id FROM o; -- trailing",
        "depends_on": ["loyal"],
    },
]


@pytest.mark.parametrize("definition", DEMO_TRAITS, ids=lambda d: d["name"])
def test_demo_computed_traits_parse(definition: dict) -> None:
    trait = parse_computed_trait(definition)
    assert isinstance(trait, ComputedTrait)
    assert trait.name == definition["name"]
    assert trait.events == ("Order Completed",)


@pytest.mark.parametrize("definition", DEMO_AUDIENCES, ids=lambda d: d["name"])
def test_demo_audiences_parse(definition: dict) -> None:
    assert isinstance(parse_audience(definition), Audience)


def test_parsed_shapes() -> None:
    trait = parse_computed_trait(DEMO_TRAITS[2])
    assert trait.property is not None
    assert (trait.property.head, trait.property.array, trait.property.tail) == (
        ("products",),
        True,
        ("category",),
    )
    loyal = parse_audience(DEMO_AUDIENCES[0]).conditions
    assert loyal == Performed("Order Completed", 3, None, 30, ())
    cart = parse_audience(DEMO_AUDIENCES[1]).conditions
    assert isinstance(cart, NotFollowedBy) and cart.window.total_seconds() == 24 * 3600
    both = parse_audience(DEMO_AUDIENCES[3]).conditions
    assert isinstance(both, And) and isinstance(both.conditions[0], TraitIs)
    sql = parse_audience(DEMO_AUDIENCES[4])
    assert sql.sql is not None and not sql.sql.endswith(";") and sql.depends_on == ("loyal",)


def trait(**changes: Any) -> dict[str, Any]:
    return {"name": "fav_dept", "aggregation": "most_frequent", "property": "category", **changes}


def audience(conditions: Any = None, **changes: Any) -> dict[str, Any]:
    return {"name": "seg", "conditions": conditions, **changes}


def leaf(**changes: Any) -> dict[str, Any]:
    return {"event": "Order Completed", **changes}


BAD_TRAITS = [
    (
        trait(aggregation="median"),
        'computed trait "fav_dept": aggregation: "median" is not one of count, sum, min',
    ),
    (
        trait(aggregation="sum", property=None),
        'computed trait "fav_dept": property: is required for sum',
    ),
    (trait(window_days=0), "window_days: must be an integer >= 1"),
    (trait(window_days=True), "window_days: must be an integer >= 1"),
    (trait(name="Fav Dept"), "computed trait: name: must match ^[a-z][a-z0-9_]{0,62}$"),
    (trait(property="products[].items[].sku"), "property: must be a property path"),
    (trait(property="a..b"), "property: must be a property path"),
    (trait(event=[]), "event: must be an event name or a non-empty list"),
    (
        trait(where=[{"property": "total", "op": "like", "value": "x"}]),
        'where[0].op: "like" is not one of eq, neq, gt',
    ),
    (
        trait(property="products[].category", where=[{"property": "tags[].name", "op": "exists"}]),
        "where[0].property: every [] filter must unnest the same array (products[])",
    ),
    (
        trait(where=[{"property": "total", "op": "gt", "value": "5"}]),
        "where[0].value: must be a number for gt",
    ),
    (
        trait(where=[{"property": "total", "op": "eq", "value": None}]),
        "where[0].value: must be a string, a number or a boolean (for null use exists)",
    ),
    (trait(colour="blue"), 'unknown key "colour"'),
    ([1, 2], "computed trait: must be an object"),
]


@pytest.mark.parametrize(("definition", "message"), BAD_TRAITS, ids=[m for _, m in BAD_TRAITS])
def test_bad_computed_traits_are_refused(definition: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_computed_trait(definition)
    assert message in str(info.value)


BAD_AUDIENCES = [
    (
        audience({"and": [leaf(), leaf(at_least=0)]}),
        "conditions.and[1].at_least: must be an integer >= 1",
    ),
    (audience({"or": []}), "conditions.or: must be a non-empty list of conditions"),
    (audience({"and": {}}), "conditions.and: must be a non-empty list of conditions"),
    (
        audience({"trait": "plan", "op": "matches", "value": "g.*"}),
        'conditions.op: "matches" is not one of eq, neq',
    ),
    (
        audience({"not": {"trait": "plan", "op": "in", "value": []}}),
        "conditions.not.value: must be a non-empty list for in",
    ),
    (audience({"trait": "plan", "op": "eq"}), "conditions.value: is required for eq"),
    (
        audience({"trait": "plan", "op": "exists", "value": "yes"}),
        "conditions.value: must be true or false for exists",
    ),
    (
        audience(leaf(at_least=3, at_most=2)),
        "conditions.at_most: must be an integer >= at_least (3)",
    ),
    (audience(leaf(within_day=3)), 'conditions: unknown key "within_day"'),
    (
        audience(leaf(not_followed_by="Order Completed")),
        "conditions.within_hours: must be a number of hours > 0",
    ),
    (
        audience(leaf(not_followed_by="X", within_hours=48, lookback_days=2)),
        "conditions.lookback_days: must be longer than within_hours",
    ),
    (audience(leaf(not_followed_by="X", within_hours=1, at_least=2)), 'unknown key "at_least"'),
    (
        audience({"or": [{"audience": "seg"}]}),
        "conditions.or[0].audience: an audience cannot contain itself",
    ),
    (
        audience({"trait": "plan", "event": "X"}),
        "conditions: must be an object with exactly one of",
    ),
    (
        audience({"or": [{"trait": "items[]", "op": "exists"}]}),
        "conditions.or[0].trait: a trait path cannot unnest an array",
    ),
    (
        audience({"computed_trait": "Orders", "op": "gt", "value": 1}),
        "conditions.computed_trait: must match",
    ),
    (audience(leaf(event="")), "conditions.event: must be an event name"),
    (
        audience(
            leaf(
                where=[
                    {"property": "products[].a", "op": "exists"},
                    {"property": "tags[]", "op": "exists"},
                ]
            )
        ),
        "conditions.where[1].property: every [] filter must unnest the same array (products[])",
    ),
    (audience(None), 'audience "seg": needs exactly one of conditions and sql'),
    (audience({"event": "X"}, sql="SELECT profile_id FROM profiles"), "needs exactly one of"),
    (
        {"name": "s", "sql": "SELECT 1 AS profile_id", "depends_on": "x"},
        "depends_on: must be a list of audience names",
    ),
    (audience({"event": "X"}, depends_on=["a"]), "depends_on: is only for sql audiences"),
]


@pytest.mark.parametrize(
    ("definition", "message"), BAD_AUDIENCES, ids=[m for _, m in BAD_AUDIENCES]
)
def test_bad_audiences_are_refused(definition: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_audience(definition)
    assert message in str(info.value)


def test_deep_nesting_is_refused() -> None:
    tree: dict[str, Any] = leaf()
    for _ in range(25):
        tree = {"not": tree}
    with pytest.raises(DefinitionError, match="nested at most 20 deep"):
        parse_audience(audience(tree))


BAD_SQL = [
    ("DROP TABLE profiles", "sql: must be a SELECT or WITH query, not DROP"),
    ("INSERT INTO audience_members VALUES ('a', 'b')", "not INSERT"),
    ("CREATE TABLE x AS SELECT 1", "not CREATE"),
    ("COPY profiles TO 'out.csv'", "not COPY"),
    ("ATTACH 'other.db'", "not ATTACH"),
    ("SELECT profile_id FROM profiles; DROP TABLE profiles", "must be a single statement, found 2"),
    (
        "WITH gone AS (DELETE FROM profiles RETURNING *) SELECT profile_id FROM gone",
        "must only read data: DELETE is not allowed",
    ),
    ("SELEC profile_id FROM profiles", "sql: does not parse"),
    ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("SELECT * FROM '/etc/passwd'", "does not run against the segment relations"),
    ("SELECT profile_id FROM customers", "Table with name customers does not exist"),
    ("SELECT 1 AS id", "must return a profile_id column"),
    ("", "must be a non-empty SQL query"),
]


@pytest.mark.parametrize(("sql", "message"), BAD_SQL, ids=[s for s, _ in BAD_SQL])
def test_bad_sql_audiences_are_refused(sql: str, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_audience({"name": "by_sql", "sql": sql})
    assert message in str(info.value)
    assert str(info.value).startswith('audience "by_sql": sql: ')


def test_keywords_inside_strings_and_comments_are_fine() -> None:
    sql = (
        "SELECT profile_id FROM profile_events -- delete me? no\n"
        "WHERE event = 'Drop Shipped' /* update */ OR event = 'Set Password'"
    )
    assert parse_audience({"name": "ok", "sql": sql}).sql == sql


def test_errors_carry_path_and_rule() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_audience(audience({"and": [leaf(), leaf(at_least=0)]}))
    assert info.value.path == "conditions.and[1].at_least"
    assert info.value.rule.startswith("must be an integer >= 1")
    assert isinstance(info.value, ValueError)
