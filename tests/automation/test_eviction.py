"""Eviction of confidently poor arms, and their re-admission."""

from __future__ import annotations

import copy
from datetime import timedelta

import numpy as np
import pytest

from kirana.automation import (
    Counts,
    EvictionRule,
    FeedbackStats,
    StatsKey,
    UserContext,
    evicted,
    judge,
    load_placement,
    rank_placement,
    review,
)
from tests.automation.conftest import NOW, placement_data

RULE = EvictionRule(threshold=0.01, confidence=0.05, min_impressions=200)


def feed(stats: FeedbackStats, arm: str, impressions: int, clicks: int, epoch=(1, 0.0)) -> None:
    key = StatsKey("home_feed", arm, "all")
    for i in range(impressions):
        stats.observe_impression(key, NOW, epoch=epoch)
        if i < clicks:
            stats.observe_click(key, NOW, epoch=epoch)


def test_not_before_enough_impressions_even_with_no_clicks() -> None:
    assert judge("x", Counts(199, 0), RULE).status == "learning"
    assert judge("x", Counts(0, 0), RULE).status == "learning"


def test_evicted_once_confidently_below_the_threshold() -> None:
    # Beta(1, 1 + n) has P(ctr > 0.01) = 0.99^(n+1): under 5 % from n = 298 impressions
    assert judge("x", Counts(250, 0), RULE).status == "active"
    verdict = judge("x", Counts(300, 0), RULE)
    assert verdict.status == "evicted" and verdict.p_above < 0.05
    assert judge("x", Counts(2000, 30), RULE).status == "active"  # 1.5 % CTR stays


def test_a_bad_arm_goes_a_good_arm_stays_and_false_evictions_are_rare() -> None:
    rng = np.random.default_rng(11)
    # a 0.2 % CTR arm: is it evicted within 1500 impressions? (once per 50 impressions)
    bad = rng.random((200, 1500)) < 0.002
    evicted_at = []
    for row in bad:
        clicks = np.cumsum(row)
        at = next(
            (n for n in range(50, 1501, 50) if judge("x", Counts(n, clicks[n - 1]), RULE).evicted),
            None,
        )
        evicted_at.append(at)
    assert all(at is not None and at >= 200 for at in evicted_at)
    assert np.median(evicted_at) <= 600
    # a 2 % CTR arm (twice the threshold), judged after 300..3000 impressions: rarely evicted
    for n in (300, 1000, 3000):
        clicks = rng.binomial(n, 0.02, size=2000)
        rate = np.mean([judge("x", Counts(n, c), RULE).evicted for c in clicks])
        assert rate < 0.01, n


def test_review_covers_widgets_and_items_and_readmits_on_version_bump(placement) -> None:
    stats = FeedbackStats()
    feed(stats, "hero/b1", 400, 0)
    feed(stats, "offers", 400, 0)
    verdicts = review(placement, stats, "all", NOW, RULE)
    assert set(verdicts) >= {"hero", "hero/b0", "hero/b1", "offers", "offers/o1", "again"}
    assert evicted(verdicts) == {"hero/b1", "offers"}

    data = copy.deepcopy(placement_data())
    data["widgets"][0]["items"][1]["version"] = 2  # the editor fixed the creative
    data["widgets"][2]["version"] = 2
    edited = load_placement(data)
    verdicts = review(edited, stats, "all", NOW, RULE)
    assert verdicts["hero/b1"].status == verdicts["offers"].status == "readmitted"
    assert evicted(verdicts) == frozenset()


def test_readmitted_when_the_schedule_window_restarts(placement) -> None:
    data = copy.deepcopy(placement_data())
    data["widgets"][0]["items"][1]["schedule"] = {"start": "2025-02-01T00:00:00Z"}
    first_run = load_placement(data)
    stats = FeedbackStats()
    feed(stats, "hero/b1", 400, 0, epoch=first_run.widget("hero").items[1].epoch)
    assert "hero/b1" in evicted(review(first_run, stats, "all", NOW, RULE))

    data["widgets"][0]["items"][1]["schedule"] = {"start": "2025-03-01T00:00:00Z"}
    second_run = load_placement(data)
    assert review(second_run, stats, "all", NOW, RULE)["hero/b1"].status == "readmitted"


def test_decay_paroles_an_evicted_arm(placement) -> None:
    stats = FeedbackStats(half_life=timedelta(days=7))
    feed(stats, "hero/b1", 400, 0)
    assert review(placement, stats, "all", NOW, RULE)["hero/b1"].evicted
    # 400 -> below 200 after a little over one half-life without impressions
    later = review(placement, stats, "all", NOW + timedelta(days=8), RULE)["hero/b1"]
    assert later.status == "learning"


def test_eviction_is_per_audience(placement) -> None:
    stats = FeedbackStats()
    for _ in range(400):
        stats.observe("home_feed", "hero/b1", "vegan", NOW, epoch=(1, 0.0))
    assert review(placement, stats, "vegan", NOW, RULE)["hero/b1"].evicted
    assert not review(placement, stats, "family", NOW, RULE)["hero/b1"].evicted


def test_ranking_drops_evicted_content_but_never_a_pinned_widget(placement) -> None:
    stats = FeedbackStats()
    feed(stats, "hero/b1", 400, 0)
    feed(stats, "again", 400, 0)  # pinned: an editor's decision outlives a poor CTR
    user = UserContext("u", recommendations={"again": ["p1"], "recs": ["p2"]})
    rng = np.random.default_rng(12)
    for _ in range(100):
        d = rank_placement(placement, user, stats, NOW, rng, eviction=RULE)
        assert d.widgets[0].key == "again"
        assert "hero/b1" in d.evicted
        for w in d.widgets:
            assert "b1" not in [i.key for i in w.items]
            if w.key == "hero":
                assert "b1" not in w.candidates


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="threshold"):
        EvictionRule(threshold=0)
    with pytest.raises(ValueError, match="confidence"):
        EvictionRule(confidence=1.5)
