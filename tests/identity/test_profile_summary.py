"""``profile_summary``: one query that answers what three point reads did (both backends)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.identity.store import SQLProfileStore
from kirana.identity.store_segments import ProfileSummary


def three_reads(store: SQLProfileStore, identifier: tuple[str, str]) -> ProfileSummary | None:
    profile_id = store.profile_ids([identifier]).get(identifier)
    if profile_id is None:
        return None
    return ProfileSummary(
        profile_id, store.computed_values(profile_id), store.audiences_of(profile_id)
    )


def seed(store: SQLProfileStore) -> None:
    with store.transaction():
        store.assign(
            {
                ("user_id", "u1"): "p1",
                ("anonymous_id", "a1"): "p1",
                ("user_id", "u2"): "p2",
                ("user_id", "u3"): "p3",
            }
        )
        store.replace_computed_values(
            "favourite_department",
            [("p1", json.dumps("produce")), ("p3", json.dumps("dairy"))],
            None,
        )
        store.replace_computed_values("scores", [("p1", json.dumps({"a": 1, "b": [2]}))], None)
        store.apply_membership("loyal", ["p1", "p3"], [], "r1")
        store.apply_membership("big_spenders", ["p1"], [], "r1")
        store.apply_membership("lapsed", ["p2"], [], "r1")


def test_one_query_reads_the_profile_its_values_and_audiences(
    profile_store: SQLProfileStore,
) -> None:
    seed(profile_store)
    assert profile_store.profile_summary(("user_id", "u1")) == ProfileSummary(
        "p1",
        {"favourite_department": "produce", "scores": {"a": 1, "b": [2]}},
        ["big_spenders", "loyal"],
    )
    assert profile_store.profile_summary(("anonymous_id", "a1")) == profile_store.profile_summary(
        ("user_id", "u1")
    )
    assert profile_store.profile_summary(("user_id", "u2")) == ProfileSummary("p2", {}, ["lapsed"])
    assert profile_store.profile_summary(("user_id", "u3")) == ProfileSummary(
        "p3", {"favourite_department": "dairy"}, ["loyal"]
    )
    assert profile_store.profile_summary(("user_id", "nobody")) is None
    assert profile_store.profile_summary(("anonymous_id", "u1")) is None  # the type counts


def test_a_profile_with_nothing_computed_is_still_found(profile_store: SQLProfileStore) -> None:
    with profile_store.transaction():
        profile_store.assign({("user_id", "bare"): "pb"})
    assert profile_store.profile_summary(("user_id", "bare")) == ProfileSummary("pb", {}, [])


NAMES = st.sampled_from(["a", "b", "c"])
VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.lists(st.booleans(), max_size=2))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    computed=st.dictionaries(
        st.sampled_from(["p1", "p2", "p3"]), st.dictionaries(NAMES, VALUES, max_size=3)
    ),
    members=st.dictionaries(NAMES, st.sets(st.sampled_from(["p1", "p2", "p3"]))),
)
def test_the_same_answer_as_the_three_reads(
    profile_store: SQLProfileStore,
    computed: dict[str, dict[str, object]],
    members: dict[str, set[str]],
) -> None:
    store = profile_store
    with store.transaction():
        store.assign({("user_id", "u1"): "p1", ("user_id", "u2"): "p2", ("email", "x"): "p3"})
        for name in ("a", "b", "c"):
            store.replace_computed_values(
                name,
                [(p, json.dumps(v[name])) for p, v in computed.items() if name in v],
                None,
            )
            store.apply_membership(name, members.get(name, set()), [], "r")
            store.apply_membership(name, [], {"p1", "p2", "p3"} - members.get(name, set()), "r")
    for identifier in [("user_id", "u1"), ("user_id", "u2"), ("email", "x"), ("user_id", "u9")]:
        assert store.profile_summary(identifier) == three_reads(store, identifier)


def test_names_come_back_in_code_point_order_on_every_backend(
    profile_store: SQLProfileStore,
) -> None:
    names = ["b", "B", "a", "é", "Z", "_x"]
    with profile_store.transaction():
        profile_store.assign({("user_id", "u"): "p"})
        for name in names:
            profile_store.replace_computed_values(name, [("p", json.dumps(name))], None)
            profile_store.apply_membership(name, ["p"], [], "r")
    summary = profile_store.profile_summary(("user_id", "u"))
    assert summary is not None
    assert list(summary.computed) == sorted(names) == summary.audiences
