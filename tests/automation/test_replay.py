"""Offline evaluation: replay and (self-normalised) IPS recover known CTRs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kirana.automation import (
    Arm,
    FeedbackStats,
    LearningReplay,
    LoggedDecision,
    RankContext,
    ThompsonPolicy,
    check_propensities,
    ips,
    replay,
    replay_estimate,
    snips,
)
from tests.automation.conftest import simulate

REPS, N, K, S = 300, 4000, 8, 4


def world(seed: int) -> np.ndarray:
    """True CTRs, segments x arms, with a different best arm per segment."""
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0.01, 0.06, size=(S, K))
    ctr[np.arange(S), rng.permutation(K)[:S]] = rng.uniform(0.10, 0.15, size=S)
    return ctr


def assert_unbiased(estimates: np.ndarray, truth: float) -> None:
    se = estimates.std(ddof=1) / math.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 3.5 * se + 1e-4, (estimates.mean(), truth, se)


def test_replay_is_unbiased_under_uniform_logging() -> None:
    ctr = world(1)
    rng = np.random.default_rng(2)
    target = ctr.argmax(axis=1)  # the per-audience best arm
    truth = ctr[np.arange(S), target].mean()
    estimates, covered = [], 0
    for _ in range(REPS):
        seg, action = rng.integers(S, size=N), rng.integers(K, size=N)
        reward = rng.random(N) < ctr[seg, action]
        est = replay_estimate(reward, action == target[seg])
        assert est.n == pytest.approx(N / K, rel=0.2)
        estimates.append(est.value)
        lo, hi = est.interval()
        covered += lo <= truth <= hi
    assert_unbiased(np.array(estimates), truth)
    assert 0.9 <= covered / REPS <= 0.99


def test_ips_and_snips_are_unbiased_under_epsilon_greedy_logging() -> None:
    ctr = world(3)
    rng = np.random.default_rng(4)
    eps, greedy = 0.3, np.zeros(S, dtype=int)  # the old policy: arm 0 for everyone, 30 % explore
    logging = np.full((S, K), eps / K)
    logging[np.arange(S), greedy] += 1 - eps
    target = np.exp(60 * ctr) / np.exp(60 * ctr).sum(axis=1, keepdims=True)  # stochastic, personal
    truth = float((target * ctr).sum(axis=1).mean())
    best = ctr.argmax(axis=1)
    naive_truth = ctr[np.arange(S), best].mean()
    est_ips, est_snips, naive = [], [], []
    for _ in range(REPS):
        seg = rng.integers(S, size=N)
        action = (rng.random(N)[:, None] > np.cumsum(logging[seg], axis=1)).sum(axis=1)
        reward = rng.random(N) < ctr[seg, action]
        est_ips.append(ips(reward, target[seg, action], logging[seg, action]).value)
        est_snips.append(snips(reward, target[seg, action], logging[seg, action]).value)
        naive.append(replay_estimate(reward, action == best[seg]).value)
    assert_unbiased(np.array(est_ips), truth)
    assert np.mean(est_snips) == pytest.approx(truth, rel=0.02)
    assert np.std(est_snips) < np.std(est_ips)  # self-normalising tames the weights
    # plain replay is not valid here: the logging policy's skew leaks into the estimate
    naive_se = np.std(naive) / math.sqrt(REPS)
    assert abs(np.mean(naive) - naive_truth) > 5 * naive_se


def test_ips_with_thompson_logged_propensities() -> None:
    """Propensities logged by the Thompson policy itself support unbiased IPS."""
    ctr = np.array([0.02, 0.04, 0.06, 0.08, 0.10])
    arms = [Arm(f"a{i}", clicks=c, impressions=40, shown=40) for i, c in enumerate([1, 2, 2, 3, 4])]
    policy, rng = ThompsonPolicy(), np.random.default_rng(5)
    n = 6000
    actions, props = np.empty(n, dtype=int), np.empty(n)
    for j in range(n):
        r = policy.rank(arms, RankContext(limit=1), rng)
        actions[j], props[j] = int(r.order[0][1:]), r.propensities[0]
    check_propensities(props)
    exact = policy.first_probabilities(arms, RankContext())
    np.testing.assert_allclose(np.bincount(actions, minlength=5) / n, exact, atol=0.02)
    rewards = rng.random((200, n)) < ctr[actions]  # 200 reward draws over the logged choices
    uniform = np.full(n, 1 / 5)  # evaluate "show any arm at random": truth = mean CTR
    values = np.array([ips(r, uniform, props).value for r in rewards])
    assert values.mean() == pytest.approx(ctr.mean(), rel=0.03)


def test_learning_replay_agrees_with_direct_simulation() -> None:
    ctr = np.array([0.03, 0.06, 0.09, 0.15])
    rng = np.random.default_rng(6)
    n = 8_000
    action = rng.integers(4, size=n)
    reward = rng.random(n) < ctr[action]
    keys = tuple(f"a{i}" for i in range(4))
    log = [
        LoggedDecision(keys, keys[a], float(r), 0.25, t=60.0 * j)
        for j, (a, r) in enumerate(zip(action, reward, strict=True))
    ]
    learner = LearningReplay(ThompsonPolicy(), FeedbackStats(half_life=math.inf))
    est = replay(log, learner, np.random.default_rng(7))
    assert est.n == pytest.approx(n / 4, rel=0.1)
    direct = [
        ctr[simulate(ThompsonPolicy(), lambda r, s: ctr, est.n, seed=s)[0]].mean() for s in range(3)
    ]
    assert est.value == pytest.approx(np.mean(direct), abs=3 * est.stderr)
    assert est.value > ctr.mean() + 3 * est.stderr  # it learnt, and replay saw it


def test_propensities_must_be_probabilities() -> None:
    for bad in ([0.5, 0.0], [1.2], [float("nan")]):
        with pytest.raises(ValueError, match=r"propensity\[\d\]"):
            check_propensities(bad)
    with pytest.raises(ValueError, match="target"):
        ips(np.ones(2), np.array([1.5, 0.2]), np.array([0.5, 0.5]))
    assert math.isnan(replay_estimate(np.ones(3), np.zeros(3, dtype=bool)).value)
