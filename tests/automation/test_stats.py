"""Decayed feedback statistics: half-life, order independence, merge and serialisation."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.automation import FeedbackStats, StatsKey
from tests.automation.conftest import NOW

DAY = 86_400.0
KEY = StatsKey("home_feed", "hero/b1", "vegan")

# (arm index, time in seconds, clicked, epoch version)
events = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.floats(0, 30 * DAY, allow_nan=False),
        st.booleans(),
        st.integers(1, 2),
    ),
    max_size=40,
)


def apply(stats: FeedbackStats, evs) -> FeedbackStats:
    for arm, t, clicked, version in evs:
        key = StatsKey("cart", f"a{arm}", "all")
        stats.observe_impression(key, t, epoch=(version, 0.0))
        if clicked:
            stats.observe_click(key, t, epoch=(version, 0.0))
    return stats


def assert_same(a: FeedbackStats, b: FeedbackStats) -> None:
    da, db = a.to_dict()["arms"], b.to_dict()["arms"]
    assert [(r["arm"], r["epoch"]) for r in da] == [(r["arm"], r["epoch"]) for r in db]
    for ra, rb in zip(da, db, strict=True):
        for f in ("impressions", "clicks", "shown", "t"):
            assert ra[f] == pytest.approx(rb[f], rel=1e-9, abs=1e-9), f


def test_half_life() -> None:
    stats = FeedbackStats(half_life=timedelta(days=7))
    stats.observe_impression(KEY, NOW)
    stats.observe_click(KEY, NOW)
    later = stats.counts(KEY, NOW + timedelta(days=7))
    assert later.impressions == pytest.approx(0.5)
    assert later.clicks == pytest.approx(0.5)
    assert later.shown == 1  # the burn-in count does not decay
    assert stats.counts(KEY, NOW + timedelta(days=14)).impressions == pytest.approx(0.25)


def test_old_event_arriving_late_counts_at_its_age() -> None:
    stats = FeedbackStats(half_life=DAY)
    stats.observe_impression(KEY, 10 * DAY)
    stats.observe_impression(KEY, 9 * DAY)  # a day older: worth half
    assert stats.counts(KEY).impressions == pytest.approx(1.5)


def test_infinite_half_life_never_decays_and_serialises() -> None:
    stats = FeedbackStats(half_life=math.inf)
    stats.observe_impression(KEY, 0.0)
    assert stats.counts(KEY, 1e9).impressions == 1.0
    again = FeedbackStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.half_life_seconds == math.inf


def test_observe_updates_the_segment_and_the_pool() -> None:
    stats = FeedbackStats()
    stats.observe("cart", "w", "vegan", NOW, clicked=True)
    stats.observe("cart", "w", None, NOW)
    assert stats.counts(StatsKey("cart", "w", "vegan")).impressions == 1
    pooled = stats.counts(StatsKey("cart", "w", "all"))
    assert (pooled.impressions, pooled.clicks) == (2, 1)


def test_new_epoch_restarts_and_stale_feedback_is_dropped() -> None:
    stats = FeedbackStats()
    for _ in range(5):
        stats.observe_impression(KEY, 100.0, epoch=(1, 0.0))
    assert stats.observe_impression(KEY, 200.0, epoch=(2, 0.0))
    assert not stats.observe_click(KEY, 300.0, epoch=(1, 0.0))  # late click on the old version
    counts = stats.counts(KEY)
    assert (counts.impressions, counts.clicks, counts.epoch) == (1.0, 0.0, (2, 0.0))
    assert stats.counts(KEY, epoch=(1, 0.0)).impressions == 0  # read as the old content: stale


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="half_life"):
        FeedbackStats(half_life=0)
    with pytest.raises(ValueError, match="UTC offset"):
        FeedbackStats().observe_impression(KEY, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match=r"arms\[0\]"):
        FeedbackStats.from_dict({"format": 1, "half_life_seconds": 1.0, "arms": [{"arm": "x"}]})
    with pytest.raises(ValueError, match="different half-lives"):
        FeedbackStats(1.0).merge(FeedbackStats(2.0))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(evs=events, gap=st.floats(0, 60 * DAY), more=st.floats(0, 60 * DAY))
def test_decay_is_monotone(evs, gap: float, more: float) -> None:
    stats = apply(FeedbackStats(half_life=7 * DAY), evs)
    for key in stats:
        t = stats.counts(key)
        t1 = t.impressions, t.clicks
        base = max(e[1] for e in evs)
        a, b = stats.counts(key, base + gap), stats.counts(key, base + gap + more)
        assert b.impressions <= a.impressions <= t1[0] + 1e-12
        assert b.clicks <= a.clicks <= t1[1] + 1e-12
        assert a.clicks <= a.impressions + 1e-9  # every click came with an impression


@settings(max_examples=60, deadline=None, derandomize=True)
@given(evs=events, data=st.data())
def test_order_independence_merge_and_round_trip(evs, data) -> None:
    in_order = apply(FeedbackStats(half_life=3 * DAY), evs)
    shuffled = apply(FeedbackStats(half_life=3 * DAY), data.draw(st.permutations(evs)))
    assert_same(in_order, shuffled)

    cut = data.draw(st.integers(0, len(evs)))
    left = apply(FeedbackStats(half_life=3 * DAY), evs[:cut])
    right = apply(FeedbackStats(half_life=3 * DAY), evs[cut:])
    assert_same(left.merge(right), in_order)
    assert_same(right.merge(left), in_order)

    wire = json.loads(json.dumps(in_order.to_dict()))
    assert FeedbackStats.from_dict(wire).to_dict() == in_order.to_dict()
