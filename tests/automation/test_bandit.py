"""Thompson sampling: convergence, per-audience learning, adaptation, and its propensities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kirana.automation import (
    Arm,
    PopularityPolicy,
    RankContext,
    ThompsonPolicy,
    UniformPolicy,
    first_probability,
)
from tests.automation.conftest import simulate

CTRS = np.array([0.03, 0.05, 0.07, 0.09, 0.15])


def test_converges_to_the_best_arm_with_sublinear_regret() -> None:
    rounds = 3000
    chosen, _ = simulate(ThompsonPolicy(), lambda r, s: CTRS, rounds, seed=1)
    late = chosen[-600:]
    assert np.mean(late == 4) >= 0.9
    regret = np.cumsum(CTRS.max() - CTRS[chosen])
    first_half, second_half = regret[rounds // 2 - 1], regret[-1] - regret[rounds // 2 - 1]
    assert second_half < 0.5 * first_half  # regret grows ever more slowly
    assert regret[-1] < 0.2 * rounds * (CTRS.max() - CTRS.mean())  # far below uniform's


def test_learns_a_different_best_arm_per_audience() -> None:
    truth = {
        "vegan": [0.04, 0.04, 0.20, 0.04],
        "family": [0.22, 0.04, 0.04, 0.04],
        "student": [0.04, 0.04, 0.04, 0.18],
    }
    best = {s: int(np.argmax(v)) for s, v in truth.items()}
    rng = np.random.default_rng(7)
    segments = list(rng.choice(list(truth), size=3000))
    chosen, _ = simulate(ThompsonPolicy(), lambda r, s: truth[s], 3000, seed=2, segments=segments)
    for seg in truth:
        late = [c for c, s in zip(chosen[-900:], segments[-900:], strict=True) if s == seg]
        assert np.mean(np.array(late) == best[seg]) >= 0.85, seg


def test_time_decay_adapts_when_the_best_arm_changes() -> None:
    before, after, switch = np.array([0.20, 0.10, 0.05]), np.array([0.05, 0.10, 0.25]), 2500

    def ctr(r: int, s: object) -> np.ndarray:
        return before if r < switch else after

    def share_after_switch(half_life: float) -> float:
        # a decision every 10 minutes: 2500 rounds is ~17 days of the old winner
        chosen, _ = simulate(ThompsonPolicy(), ctr, switch + 1000, 3, half_life=half_life, step=600)
        return float(np.mean(chosen[switch + 300 :] == 2))

    decayed, undecayed = share_after_switch(2 * 86_400.0), share_after_switch(math.inf)
    assert decayed >= 0.85  # a two-day half-life forgets the old winner within ~2 days
    assert decayed - undecayed >= 0.2  # without decay the old evidence holds it back


def test_affinity_blend_and_popularity_fallback() -> None:
    rng = np.random.default_rng(4)
    arms = [
        Arm("a", clicks=50, impressions=1000, shown=1000),
        Arm("b", clicks=50, impressions=1000, shown=1000),
    ]
    policy = ThompsonPolicy(affinity_weight=0.5)

    def share_b(context: RankContext) -> float:
        return np.mean([policy.rank(arms, context, rng).order[0] == "b" for _ in range(600)])

    assert 0.4 < share_b(RankContext(limit=1)) < 0.6  # no affinities: CTR alone decides
    assert share_b(RankContext(limit=1, affinities={"b": 1.0})) > 0.95
    # a liked but clearly worse arm does not win: the boost is at most 1 + w
    worse = [Arm("a", 100, 1000, 1000), Arm("b", 30, 1000, 1000)]
    tops = [
        policy.rank(worse, RankContext(limit=1, affinities={"b": 1.0}), rng).order[0]
        for _ in range(300)
    ]
    assert tops.count("a") > 270

    # cold user, warm arms: the popular arm leads
    popular = [Arm("a", 10, 1000, 1000), Arm("b", 80, 1000, 1000), Arm("c", 40, 1000, 1000)]
    assert policy.rank(popular, RankContext(), rng).order[0] == "b"


def test_cold_start_explores_new_arms_uniformly() -> None:
    rng = np.random.default_rng(5)
    policy = ThompsonPolicy(burn_in=10)
    arms = [Arm("old", 40, 400, 400), Arm("new1"), Arm("new2", 0, 3, 3)]
    firsts = []
    for _ in range(400):
        ranking = policy.rank(arms, RankContext(), rng)
        assert ranking.order[2] == "old"  # burn-in arms are shown before learnt ones
        assert ranking.explored == (True, True, False)
        assert ranking.propensities[:2] == (0.5, 0.5)
        firsts.append(ranking.order[0])
    assert 0.4 < firsts.count("new1") / 400 < 0.6


def test_pinned_arms_keep_their_slot_with_propensity_one() -> None:
    rng = np.random.default_rng(6)
    arms = [Arm(k, 5, 100, 100) for k in "abcde"]
    for _ in range(50):
        r = ThompsonPolicy().rank(arms, RankContext(limit=4, pinned={"c": 2, "e": 0}), rng)
        assert len(r.order) == 4 and r.order[0] == "e" and r.order[2] == "c"
        assert r.propensities[0] == r.propensities[2] == 1.0 and r.pinned == (1, 0, 1, 0)


def test_first_slot_probability_is_exact() -> None:
    a, b = np.array([3.0, 5.2, 1.0, 30.0]), np.array([50.0, 60.0, 20.0, 700.0])
    m = np.array([1.0, 1.2, 1.0, 1.1])
    exact = np.array([first_probability(a, b, m, i) for i in range(4)])
    assert exact.sum() == pytest.approx(1.0, abs=2e-3)
    draws = np.random.default_rng(8).beta(a, b, size=(400_000, 4)) * m
    freq = np.bincount(draws.argmax(axis=1), minlength=4) / len(draws)
    np.testing.assert_allclose(exact, freq, atol=4e-3)
    # two arms, integer parameters: P(Beta(2, 3) > Beta(3, 2)) = 17/70 in closed form
    two = first_probability(np.array([2.0, 3.0]), np.array([3.0, 2.0]), np.ones(2), 0)
    assert two == pytest.approx(17 / 70, abs=1e-3)


def test_logged_propensities_match_realised_frequencies() -> None:
    rng = np.random.default_rng(9)
    arms = [Arm("a", 6, 100, 100), Arm("b", 8, 100, 100), Arm("c", 3, 60, 60), Arm("d", 1, 50, 50)]
    context = RankContext(limit=3, affinities={"c": 0.6})
    policy = ThompsonPolicy(n_draws=200)
    counts: dict[tuple[int, str], int] = {}
    logged: dict[tuple[int, str], list[float]] = {}
    n = 3000
    for _ in range(n):
        r = policy.rank(arms, context, rng)
        for pos, (key, p) in enumerate(zip(r.order, r.propensities, strict=True)):
            assert 0.0 < p <= 1.0
            counts[pos, key] = counts.get((pos, key), 0) + 1
            logged.setdefault((pos, key), []).append(p)
    for (pos, key), c in counts.items():
        if c > 100:  # the logged marginal agrees with how often it actually happened
            assert np.mean(logged[pos, key]) == pytest.approx(c / n, abs=0.03), (pos, key)


def test_baseline_policies() -> None:
    rng = np.random.default_rng(10)
    arms = [
        Arm(k, c, 100, 100, pooled_clicks=pc, pooled_impressions=500)
        for k, c, pc in (("a", 20, 10), ("b", 1, 60), ("c", 5, 30))
    ]
    popular = PopularityPolicy().rank(arms, RankContext(), rng)
    assert popular.order == ("b", "c", "a") and popular.propensities == (1.0, 1.0, 1.0)
    uniform = UniformPolicy().rank(arms, RankContext(limit=2), rng)
    assert uniform.propensities == (pytest.approx(1 / 3),) * 2


def test_invalid_inputs_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unique"):
        ThompsonPolicy().rank([Arm("a"), Arm("a")], RankContext(), rng)
    with pytest.raises(ValueError, match="priors"):
        ThompsonPolicy(prior_a=0)
    assert ThompsonPolicy().rank([], RankContext(), rng).order == ()


def test_propensities_can_be_skipped_when_nothing_is_logged() -> None:
    arms = [Arm(k, 5, 100, 100) for k in "abc"] + [Arm("new")]
    r = ThompsonPolicy().rank(arms, RankContext(propensities=False), np.random.default_rng(0))
    assert r.order[0] == "new" and len(r.propensities) == 4
    assert all(math.isnan(p) for p in r.propensities)


def test_propensity_cache_reports_the_frequencies_it_realises() -> None:
    """With the cache (serving), propensities are looked up once per distribution and still
    match how often each arm lands in each slot."""
    arms = [Arm(f"a{i}", clicks=4 + 2 * i, impressions=100, shown=100) for i in range(5)]
    context = RankContext(limit=3, affinities={"a0": 0.8})
    policy = ThompsonPolicy(n_draws=20_000, cache_size=64)
    rng = np.random.default_rng(5)
    seen: dict[tuple[int, str], list[float]] = {}
    runs = 4000
    for _ in range(runs):
        ranking = policy.rank(arms, context, rng)
        for pos, (key, p) in enumerate(zip(ranking.order, ranking.propensities, strict=True)):
            seen.setdefault((pos, key), []).append(p)
    for (pos, key), reported in seen.items():
        assert len(set(reported)) == 1  # computed once, then looked up
        assert reported[0] == pytest.approx(len(reported) / runs, abs=0.03), (pos, key)
    a, b = policy._params(arms)
    m = np.array([1.4, 1, 1, 1, 1])
    assert seen[(0, "a4")][0] == pytest.approx(first_probability(a, b, m, 4), abs=1e-12)
    assert len(policy._cache) <= 1 + len(arms)  # one frequency table, one exact value per arm
