"""Targeting conditions: Kirana's evaluator agrees with the GrowthBook SDK's on generated
attributes and conditions, and unsupported syntax is refused up front."""

from __future__ import annotations

from typing import Any

import pytest
from growthbook.core import evalCondition
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.experiments.assignment import Experiment, ExperimentDefinitionError, eval_condition
from kirana.experiments.assignment.conditions import condition_problem

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -2.5]),
    st.sampled_from(["", "a", "b", "ab", "B", "é", "😀", "10", "9"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
attributes = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": values,
        "c": values,
        "o": st.fixed_dictionaries({}, optional={"x": values, "y": scalars}),
    },
)
paths = st.sampled_from(["a", "b", "c", "o.x", "o.y", "missing", "a.0", "a.length", "o"])
plain_lists = st.lists(scalars, max_size=3)
orderable = st.one_of(st.integers(-3, 3), st.sampled_from([1.5, "a", "b", "é", "10"]))


sizes = st.builds(lambda op, n: {op: n}, st.sampled_from(["$gt", "$lte", "$ne"]), st.integers(0, 3))


def operator_objects(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    single = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), orderable),
        st.tuples(st.sampled_from(["$in", "$nin"]), plain_lists),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$not"), inner),
        st.tuples(st.just("$size"), st.one_of(st.integers(0, 3), sizes)),
        st.tuples(st.just("$all"), st.lists(st.one_of(scalars, inner), max_size=2)),
    )
    return st.lists(single, min_size=1, max_size=2).map(dict)


value_conditions = st.recursive(
    st.one_of(scalars, plain_lists), lambda inner: operator_objects(inner), max_leaves=4
)
attribute_conditions = st.dictionaries(paths, value_conditions, max_size=2)
conditions = st.recursive(
    attribute_conditions,
    lambda inner: st.one_of(
        st.builds(lambda cs: {"$and": cs}, st.lists(inner, max_size=2)),
        st.builds(lambda cs: {"$or": cs}, st.lists(inner, max_size=2)),
        st.builds(lambda cs: {"$nor": cs}, st.lists(inner, max_size=2)),
        st.builds(lambda c: {"$not": c}, inner),
        st.builds(lambda a, b: {**a, **b}, attribute_conditions, inner),
    ),
    max_leaves=5,
)


@settings(max_examples=1500, deadline=None)
@given(attributes, conditions)
def test_eval_condition_agrees_with_sdk(attrs: dict[str, Any], condition: dict[str, Any]) -> None:
    assert condition_problem(condition) is None, condition
    assert eval_condition(attrs, condition) == evalCondition(attrs, condition)


@pytest.mark.parametrize(
    ("condition", "attrs", "expected"),
    [
        ({"country": "IN"}, {"country": "IN"}, True),
        ({"age": 18}, {"age": "18"}, False),  # types never coerce
        ({"vip": True}, {"vip": 1}, False),
        ({"age": {"$gte": 18, "$lt": 65}}, {"age": 30}, True),
        ({"age": {"$gt": 18}}, {}, False),  # a missing attribute is null, not orderable
        ({"plan": {"$ne": "free"}}, {}, True),
        ({"plan": {"$in": ["pro", "team"]}}, {"plan": "team"}, True),
        ({"audiences": {"$in": ["vip"]}}, {"audiences": ["loyal", "vip"]}, True),
        ({"tags": {"$nin": ["bot"]}}, {"tags": ["bot", "beta"]}, False),
        ({"email": {"$exists": True}}, {"email": None}, False),
        ({"email": {"$exists": False}}, {}, True),
        ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
        ({"$or": []}, {}, True),
        ({"$nor": [{"a": 1}]}, {"a": 1}, False),
        ({"$not": {"country": "DE"}}, {"country": "IN"}, True),
        ({"device.os": "ios"}, {"device": {"os": "ios"}}, True),
        ({"tags": {"$all": ["a", "b"]}}, {"tags": ["b", "c", "a"]}, True),
        ({"tags": {"$size": {"$gt": 1}}}, {"tags": ["x"]}, False),
        ({"name": {"$lt": "b"}}, {"name": "a"}, True),
    ],
)
def test_condition_examples(
    condition: dict[str, Any], attrs: dict[str, Any], expected: bool
) -> None:
    assert condition_problem(condition) is None
    assert eval_condition(attrs, condition) is expected
    assert evalCondition(attrs, condition) is expected


@pytest.mark.parametrize(
    ("targeting", "message"),
    [
        ({"a": {"$regex": "x"}}, "unsupported operator '$regex'"),
        ({"$where": "1"}, "unsupported logical operator '$where'"),
        ({"a": {"$in": "x"}}, "$in takes a list"),
        ({"a": {"$gt": [1]}}, "$gt takes a number or a string"),
        ({"a": {"$exists": 1}}, "$exists takes true or false"),
        ({"a": {"$eq": {"b": 1}}}, "$eq takes a plain value"),
        ({"a": {"$eq": 1, "b": 2}}, "mixes operators and plain keys"),
        ({"$or": {"a": 1}}, "$or takes a list of conditions"),
        ({"$and": [{"a": {"$foo": 1}}]}, "unsupported operator '$foo'"),
        (["a"], "must be an object"),
    ],
)
def test_unsupported_targeting_refused(targeting: Any, message: str) -> None:
    with pytest.raises(ExperimentDefinitionError) as info:
        Experiment(key="e", variations=[{"key": "a"}, {"key": "b"}], targeting=targeting)
    assert info.value.field == "targeting"
    assert message in str(info.value)
