"""Shared builders for the automation tests."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from kirana.automation import Arm, FeedbackStats, Placement, RankContext, StatsKey, load_placement

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def item(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "title": key.title(), "template": "card", **extra}


def placement_data(**extra: Any) -> dict[str, Any]:
    return {
        "key": "home_feed",
        "max_widgets": 3,
        "widgets": [
            {
                "key": "hero",
                "kind": "banner",
                "max_items": 2,
                "items": [item(f"b{i}") for i in range(4)],
            },
            {"key": "again", "kind": "buy_again", "pinned_slot": 0, "max_items": 3},
            {"key": "offers", "kind": "offer", "items": [item("o1"), item("o2")]},
            {"key": "recs", "kind": "recommended_for_you"},
        ],
        **extra,
    }


@pytest.fixture
def placement() -> Placement:
    return load_placement(placement_data())


def simulate(
    policy,
    ctr,
    rounds: int,
    seed: int,
    *,
    half_life: float = math.inf,
    segments=None,
    step: float = 60.0,
):
    """Run ``policy`` online for ``rounds`` top-1 decisions against true CTRs.

    ``ctr(round, segment)`` gives the true CTR vector; ``segments`` (optional) is the
    per-round audience. Returns (chosen arm index per round, true CTR matrix per round).
    """
    rng = np.random.default_rng(seed)
    stats = FeedbackStats(half_life=half_life)
    chosen = np.empty(rounds, dtype=int)
    truths = []
    for r in range(rounds):
        segment = None if segments is None else segments[r]
        truth = np.asarray(ctr(r, segment))
        t = r * step
        arms = []
        for i in range(len(truth)):
            seg = stats.counts(StatsKey("p", f"a{i}", segment or "all"), t)
            pooled = None if segment is None else stats.counts(StatsKey("p", f"a{i}"), t)
            arms.append(Arm.from_counts(f"a{i}", seg, pooled))
        top = policy.rank(arms, RankContext(limit=1, propensities=False), rng).order[0]
        chosen[r] = int(top[1:])
        stats.observe("p", top, segment, t, clicked=bool(rng.random() < truth[chosen[r]]))
        truths.append(truth)
    return chosen, np.array(truths)
