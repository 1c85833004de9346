"""Business rules: targeting, schedules, availability, frequency caps, pins and limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.automation import (
    ContentItem,
    FrequencyCap,
    Placement,
    Schedule,
    UserContext,
    Widget,
    place_pinned,
)
from kirana.automation.rules import candidates, capped, eligible_items
from tests.automation.conftest import NOW

AUDIENCES = ["vegan", "family", "student"]
HOUR = timedelta(hours=1)

schedules = st.one_of(
    st.none(),
    st.builds(
        lambda a, b: Schedule(start=NOW + a * HOUR, end=NOW + (a + b) * HOUR),
        st.integers(-48, 48),
        st.integers(1, 48),
    ),
    st.builds(lambda a: Schedule(start=NOW + a * HOUR), st.integers(-48, 48)),
)
audience_lists = st.lists(st.sampled_from(AUDIENCES), unique=True, max_size=2).map(tuple)


@st.composite
def widgets(draw, key: str) -> Widget:
    items = tuple(
        ContentItem(
            key=f"i{j}",
            title="t",
            template="t",
            audiences=draw(audience_lists),
            schedule=draw(schedules),
            available=draw(st.booleans()),
        )
        for j in range(draw(st.integers(1, 4)))
    )
    cap = draw(st.none() | st.builds(FrequencyCap, st.integers(1, 3), st.sampled_from([1.0, 24.0])))
    return Widget(
        key=key,
        kind="banner",
        items=items,
        audiences=draw(audience_lists),
        schedule=draw(schedules),
        frequency_cap=cap,
    )


users = st.builds(
    lambda auds, seen: UserContext(
        "u", audiences=frozenset(auds), impressions={"w0": [NOW - h * HOUR for h in seen]}
    ),
    st.lists(st.sampled_from(AUDIENCES), unique=True, max_size=2),
    st.lists(st.floats(0, 30), max_size=5),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(w0=widgets("w0"), w1=widgets("w1"), user=users)
def test_candidates_obey_every_rule(w0: Widget, w1: Widget, user: UserContext) -> None:
    placement = Placement(key="cart", widgets=(w0, w1))
    allowed = candidates(placement, user, NOW)
    for cand in allowed:
        w = cand.widget
        assert not w.audiences or user.audiences & set(w.audiences)
        assert w.schedule is None or w.schedule.active(NOW)
        assert not capped(w, user, NOW)
        assert cand.items  # an empty widget is never offered
        for item in cand.items:
            assert item.available
            assert item.schedule is None or item.schedule.active(NOW)
            assert not item.audiences or user.audiences & set(item.audiences)
    # and nothing that satisfies them is left out
    for w in placement.widgets:
        if w.key not in {c.widget.key for c in allowed}:
            assert (
                (w.audiences and not user.audiences & set(w.audiences))
                or (w.schedule is not None and not w.schedule.active(NOW))
                or capped(w, user, NOW)
                or not eligible_items(w, user, NOW)
            )


def test_frequency_cap_counts_only_the_window() -> None:
    w = Widget(key="w", kind="popular", frequency_cap=FrequencyCap(max_impressions=2, hours=24))
    seen = [NOW - 1 * HOUR, NOW - 23 * HOUR, NOW - 25 * HOUR]
    assert capped(w, UserContext("u", impressions={"w": seen}), NOW)
    assert not capped(w, UserContext("u", impressions={"w": seen[1:]}), NOW)
    assert not capped(w, UserContext("u", impressions={"other": seen}), NOW)
    assert not capped(w, UserContext("u", impressions={"w": seen}), NOW + 2 * HOUR)


def test_recommendation_widgets_need_recommendations() -> None:
    placement = Placement(
        key="product_page",
        widgets=(
            Widget(key="fbt", kind="frequently_bought_together"),
            Widget(key="pop", kind="popular"),
        ),
    )
    user = UserContext("u", recommendations={"pop": ["p1", "p2", "p1"]})
    allowed = candidates(placement, user, NOW)
    assert [c.widget.key for c in allowed] == ["pop"]
    assert allowed[0].products == ("p1", "p2")  # duplicates removed, order kept


def test_user_context_validation() -> None:
    with pytest.raises(ValueError, match="segment"):
        UserContext("u", audiences=frozenset({"vegan"}), segment="family")
    with pytest.raises(ValueError, match=r"affinities\['x'\]"):
        UserContext("u", affinities={"x": 1.5})
    assert UserContext("u", segment="all").stats_segment == "all"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    n_free=st.integers(0, 8),
    slots=st.lists(st.integers(0, 7), unique=True, max_size=4),
    limit=st.integers(1, 8),
)
def test_pins_stay_pinned(n_free: int, slots: list[int], limit: int) -> None:
    slots = [s for s in slots if s < limit]
    free = [f"f{i}" for i in range(n_free)]
    pins = {f"p{s}": s for s in slots}
    out = place_pinned(free + list(pins), pins, limit)
    assert len(out) == min(limit, n_free + len(pins)) == len(set(out))
    assert [k for k in out if k in pins] == sorted(pins, key=pins.__getitem__)
    assert [k for k in out if k not in pins] == free[: len(out) - sum(k in pins for k in out)]
    for key, slot in pins.items():
        needed = slot - sum(s < slot for s in pins.values())  # free keys to fill the slots above
        if n_free >= needed:
            assert out[slot] == key
