"""The one-ranking fast path (plain Python) draws and orders exactly as the numpy one."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.automation import Arm, PopularityPolicy, RankContext, ThompsonPolicy, UniformPolicy
from kirana.automation.bandit import RankingPolicy, _rank_row, _rank_rows

# few distinct values, so ties (broken by the random draw) are common
SCORES = st.lists(st.sampled_from([0.0, -0.0, 0.01, 0.02, 0.5, 1.0, 3.0]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(scores=SCORES, seed=st.integers(0, 2**32 - 1))
def test_one_row_ranks_as_lexsort_does(scores: list[float], seed: int) -> None:
    fast, slow = np.random.default_rng(seed), np.random.default_rng(seed)
    expected = _rank_rows(np.array([scores], dtype=float).reshape(1, -1), slow)[0].tolist()
    assert _rank_row(scores, fast) == expected
    assert fast.random() == slow.random()  # and leaves the generator in the same state


def numpy_rank_row(scores: list[float], rng: np.random.Generator) -> list[int]:
    return _rank_rows(np.array([scores], dtype=float).reshape(1, -1), rng)[0].tolist()


class NumpyRow(RankingPolicy):
    """The policy under test with the fast path turned off: one row through numpy."""

    def __init__(self, inner: RankingPolicy) -> None:
        self.__dict__.update(inner.__dict__)
        self.exact_slots = inner.exact_slots
        self._inner = inner

    def _scores(self, arms, context, rng, draws):  # type: ignore[no-untyped-def]
        return self._inner._scores(arms, context, rng, draws)

    def _exact_propensity(self, arms, context, position, index):  # type: ignore[no-untyped-def]
        return self._inner._exact_propensity(arms, context, position, index)

    def _cache_key(self, arms, context):  # type: ignore[no-untyped-def]
        return self._inner._cache_key(arms, context)

    def _score_row(self, arms, context, rng):  # type: ignore[no-untyped-def]
        return self._scores(arms, context, rng, 1)[0].tolist()

    def rank(self, candidates, context, rng):  # type: ignore[no-untyped-def]
        with mock.patch("kirana.automation.bandit._rank_row", numpy_rank_row):
            return super().rank(candidates, context, rng)


ARMS = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 3000), st.integers(0, 40)),
    min_size=1,
    max_size=8,
)
# one ranking request: arms, seed, limit, affinities, pins
REQUEST = {
    "arms": ARMS,
    "seed": st.integers(0, 2**32 - 1),
    "limit": st.one_of(st.none(), st.integers(1, 8)),
    "liked": st.lists(st.floats(0, 1), max_size=8),
    "pins": st.dictionaries(st.integers(0, 8), st.integers(0, 8), max_size=3),
}


def make_arms(arms: list[tuple[int, int, int]]) -> list[Arm]:
    return [
        Arm(f"a{i}", clicks=min(c, n), impressions=n, shown=s + 5)
        for i, (c, n, s) in enumerate(arms)
    ]


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["thompson", "cached", "popularity", "uniform"]),
    logged=st.booleans(),
    **REQUEST,
)
def test_rankings_and_propensities_are_unchanged(
    arms: list[tuple[int, int, int]],
    seed: int,
    limit: int | None,
    liked: list[float],
    kind: str,
    logged: bool,
    pins: dict[int, int],
) -> None:
    make = {
        "thompson": lambda: ThompsonPolicy(burn_in=10, n_draws=50),
        "cached": lambda: ThompsonPolicy(burn_in=10, n_draws=50, cache_size=64),
        "popularity": lambda: PopularityPolicy(burn_in=10, n_draws=50),
        "uniform": lambda: UniformPolicy(n_draws=50),
    }[kind]
    policy: RankingPolicy = make()
    candidates = make_arms(arms)
    context = RankContext(
        limit=limit,
        affinities={f"a{i}": x for i, x in enumerate(liked) if i < len(arms)},
        pinned={f"a{i}": slot for i, slot in pins.items()},
        propensities=logged,  # without propensities every policy ranks once (the fast path)
    )
    reference = NumpyRow(make())  # its own caches
    for _ in range(3):  # the second and third use the propensity cache, when there is one
        fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        fast = policy.rank(candidates, context, fast_rng)
        slow = reference.rank(candidates, context, slow_rng)
        assert (fast.order, fast.explored, fast.pinned) == (slow.order, slow.explored, slow.pinned)
        assert np.array_equal(fast.propensities, slow.propensities, equal_nan=True)
        assert fast_rng.random() == slow_rng.random()


@settings(max_examples=100, deadline=None)
@given(**REQUEST)
def test_a_remembered_plan_ranks_as_a_fresh_policy_does(
    arms: list[tuple[int, int, int]],
    seed: int,
    limit: int | None,
    liked: list[float],
    pins: dict[int, int],
) -> None:
    """A server reuses its Arm objects, so rank() reuses its plan for them: the rankings and
    propensities must be those of a policy seeing the arms for the first time, whatever the
    affinities and pins of each call (they are part of the plan's key)."""
    candidates = make_arms(arms)
    contexts = [
        RankContext(
            limit=limit,
            affinities={f"a{i}": x for i, x in enumerate(liked) if i < len(arms)},
            pinned={f"a{i}": slot for i, slot in pins.items()},
        ),
        RankContext(limit=limit),
        RankContext(limit=limit, propensities=False),
    ]
    shared = ThompsonPolicy(burn_in=10, n_draws=50, cache_size=64)
    for _ in range(2):
        for k, context in enumerate(contexts):
            fresh_policy = ThompsonPolicy(burn_in=10, n_draws=50, cache_size=64)
            fresh_policy._cache = dict(shared._cache)  # the same propensity cache, no plans
            a = shared.rank(candidates, context, np.random.default_rng(seed + k))
            b = fresh_policy.rank(candidates, context, np.random.default_rng(seed + k))
            assert (a.order, a.explored, a.pinned) == (b.order, b.explored, b.pinned)
            assert np.array_equal(a.propensities, b.propensities, equal_nan=True)
    assert 1 <= len(shared._plans) <= len(contexts)  # the plans were remembered
