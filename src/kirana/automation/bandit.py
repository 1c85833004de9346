"""Ranking policies: Thompson sampling on Beta posteriors, and two baselines.

Template method: :meth:`RankingPolicy.rank` does what every policy shares (burn-in of new
arms, pinned slots, the limit, tie-breaking and the logged propensities) and asks a subclass
only for scores, via ``_scores``. A policy is pure: the caller passes the arms' statistics and
a seeded ``numpy.random.Generator``.

Thompson sampling (Thompson 1933; Chapelle & Li 2011, "An Empirical Evaluation of Thompson
Sampling") draws a CTR for each arm from its posterior
``Beta(prior_a + clicks, prior_b + impressions - clicks)`` over *decayed* counts and ranks by
the draws: an arm is shown first with the probability that it is the best one, so exploration
fades on its own as evidence accumulates, and comes back when counts decay.

Preference blend: ``score = sampled_ctr * (1 + w * affinity)``. The multiplicative form is
scale-free (a fully-liked arm gets the same relative boost on a 1 % cart CTR as on a 10 % home
feed CTR, where an additive term would swamp low CTRs), leaves the order untouched when the
user has no affinities (popularity by CTR, the cold-start fallback) and never turns a
confidently poor arm into a winner by more than a factor ``1 + w``.

Propensities (logged with each decision, for off-policy evaluation): for every shown slot,
the marginal probability that the policy puts the shown arm at that slot. Burn-in slots are a
uniform shuffle (exactly ``1/B``); pinned slots are 1. The first learnt slot is computed
exactly up to quadrature, for any number of arms:
``P(i first) = E_{x ~ Beta_i}[prod_{j != i} F_j(m_i x / m_j)]``, a one-dimensional integral
(see :func:`first_probability`; about 1e-4 absolute error). Later slots use ``n_draws``
Monte-Carlo rankings plus the realised one, ``(1 + hits) / (1 + n_draws)``, which is
consistent and never zero for an arm that was actually shown. Simulations and replays that
log nothing pass ``RankContext(propensities=False)`` and get NaN, for speed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from scipy import special

from kirana.automation.rules import place_pinned
from kirana.automation.stats import Counts

T = TypeVar("T")
MIN_PROPENSITY = 1e-6
_TAIL = 1e-9


@dataclass(frozen=True)
class Arm:
    """One rankable thing and its decayed feedback in the user's segment.

    ``pooled_*`` are the all-audience counts when the segment is an audience (``None`` when
    the segment *is* ``"all"``); ``shown`` is the undecayed impression count, for burn-in.
    """

    key: str
    clicks: float = 0.0
    impressions: float = 0.0
    shown: float = 0.0
    pooled_clicks: float | None = None
    pooled_impressions: float | None = None

    @classmethod
    def from_counts(cls, key: str, segment: Counts, pooled: Counts | None = None) -> Arm:
        return cls(
            key,
            segment.clicks,
            segment.impressions,
            segment.shown,
            None if pooled is None else pooled.clicks,
            None if pooled is None else pooled.impressions,
        )


@dataclass(frozen=True)
class RankContext:
    """Per-request inputs: how many slots, the user's affinities, the pinned arms."""

    limit: int | None = None
    affinities: Mapping[str, float] = field(default_factory=dict)
    pinned: Mapping[str, int] = field(default_factory=dict)
    propensities: bool = True  # False (simulations, replay): skip them, report NaN


@dataclass(frozen=True)
class Ranking:
    """The shown order and, per slot, the probability of that arm in that slot."""

    order: tuple[str, ...]
    propensities: tuple[float, ...]
    explored: tuple[bool, ...]  # burn-in slots
    pinned: tuple[bool, ...]


class RankingPolicy(ABC):
    """Shared ranking mechanics; subclasses provide ``_scores`` (higher is better).

    Burn-in: arms with fewer than ``burn_in`` (undecayed) impressions in the segment go first,
    in uniformly random order. New content gets a guaranteed first look in every audience
    whatever its prior says, and those first impressions form a clean randomised sample with a
    known propensity (``1/B``). Pinned arms then take their slots and the list is cut to
    ``limit`` (:func:`~kirana.automation.rules.place_pinned`).
    """

    def __init__(self, *, burn_in: float = 10, n_draws: int = 200, cache_size: int = 0) -> None:
        if burn_in < 0 or n_draws < 1 or cache_size < 0:
            raise ValueError("burn_in must be >= 0, n_draws >= 1 and cache_size >= 0")
        self.burn_in = burn_in
        self.n_draws = n_draws
        self.cache_size = cache_size
        self._cache: dict[tuple, object] = {}
        self._plans: dict[tuple, _Plan] = {}

    def _cache_key(self, arms: Sequence[Arm], context: RankContext) -> tuple | None:
        """What the ranking distribution of ``arms`` depends on, for the propensity cache
        (``None``: not cacheable). Subclasses whose scores depend only on per-arm parameters
        return those parameters, suitably rounded."""
        return None

    def _cached(self, key: tuple, compute: Callable[[], T]) -> T:
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            hit = self._cache[key] = compute()
        return hit  # type: ignore[return-value]

    def _position_counts(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, slots: int
    ) -> np.ndarray:
        """``counts[pos, i]``: how often arm i came at ``pos`` in ``n_draws`` rankings."""
        ranks = _rank_rows(self._scores(arms, context, rng, self.n_draws), rng)[:, :slots]
        return np.stack([np.bincount(ranks[:, pos], minlength=len(arms)) for pos in range(slots)])

    def _position_frequencies(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, slots: int
    ) -> list[list[int]]:
        return self._position_counts(arms, context, rng, slots).tolist()

    def _score_row(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator
    ) -> list[float]:
        """One row of ``_scores`` as a list (subclasses may draw it without numpy arrays, but
        must take the same values from ``rng``)."""
        return self._scores(arms, context, rng, 1)[0].tolist()

    @abstractmethod
    def _scores(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, draws: int
    ) -> np.ndarray:
        """``(draws, len(arms))`` scores; row 0 decides the shown order, the rest estimate it."""

    #: leading positions for which _exact_propensity has an answer (it is not asked past them)
    exact_slots: float = 0

    def _exact_propensity(
        self, arms: Sequence[Arm], context: RankContext, position: int, index: int
    ) -> float | None:
        """P(arms[index] at ``position``) when a subclass can compute it; else Monte-Carlo."""
        return None

    def _plan(self, candidates: Sequence[Arm], context: RankContext) -> _Plan:
        """The draw-free part of :meth:`rank`, remembered by the arms' identities and the
        context's values: a server ranks the same arms (``rank_placement(arm_cache=…)``)
        for every request within a second, and this bookkeeping costs more than the draws.
        """
        aff = context.affinities
        memo = (
            tuple(map(id, candidates)),
            context.limit,
            tuple(context.pinned.items()) if context.pinned else (),
            tuple([aff.get(a.key, 0.0) for a in candidates]) if aff else (),
            context.propensities,
        )
        plan = self._plans.get(memo)
        if plan is None:
            if len(self._plans) >= 4096:
                self._plans.clear()
            plan = self._plans[memo] = self._make_plan(candidates, context)
        return plan

    def _make_plan(self, candidates: Sequence[Arm], context: RankContext) -> _Plan:
        keys = [a.key for a in candidates]
        keyset = set(keys)
        if len(keyset) != len(keys):
            raise ValueError("candidates: arm keys must be unique")
        pinned = {k: s for k, s in context.pinned.items() if k in keyset}
        limit = len(keys) if context.limit is None else min(context.limit, len(keys))
        if pinned:
            free = [a for a in candidates if a.key not in pinned]
            # how many free arms the final list holds once pins are merged in
            n_free = sum(k not in pinned for k in place_pinned(keys, pinned, limit))
        else:
            free, n_free = list(candidates), limit
        fresh = [a for a in free if a.shown < self.burn_in]
        learnt = [a for a in free if a.shown >= self.burn_in]
        n_learnt = max(0, n_free - len(fresh))
        logged = context.propensities
        return _Plan(
            arms=tuple(candidates),
            pinned=pinned,
            limit=limit,
            n_free=n_free,
            fresh=fresh,
            learnt=learnt,
            n_learnt=n_learnt,
            estimate=logged and n_learnt > self.exact_slots,
            key=self._cache_key(learnt, context) if self.cache_size and logged else None,
            row_inputs=self._row_inputs(learnt, context) if n_learnt else None,
        )

    def _row_inputs(self, arms: Sequence[Arm], context: RankContext) -> object | None:
        """What :meth:`_draw_row` needs, worked out once per plan (``None``: this policy
        draws through :meth:`_score_row`)."""
        return None

    def _draw_row(self, inputs: object, rng: np.random.Generator) -> list[float]:
        """``_score_row`` from the inputs :meth:`_row_inputs` prepared."""
        raise NotImplementedError

    def rank(
        self, candidates: Sequence[Arm], context: RankContext, rng: np.random.Generator
    ) -> Ranking:
        plan = self._plan(candidates, context)
        fresh, learnt, n_free, n_learnt = plan.fresh, plan.learnt, plan.n_free, plan.n_learnt
        # (a permutation of fewer than two draws nothing from the generator)
        fresh_order = fresh if len(fresh) < 2 else [fresh[i] for i in rng.permutation(len(fresh))]

        order: list[Arm] = fresh_order[:n_free]
        props = [1.0 / len(fresh) for _ in order]
        if n_learnt:
            estimate, key = plan.estimate, plan.key
            counts = None
            if estimate and key is not None:  # Monte-Carlo frequencies, once per distribution
                counts = self._cached(
                    ("counts", n_learnt, key),
                    lambda: self._position_frequencies(learnt, context, rng, n_learnt),
                )
            draws = 1 + self.n_draws if estimate and counts is None else 1
            if draws == 1:  # one ranking (the usual case on a server): no arrays
                ranks = None
                row = (
                    self._score_row(learnt, context, rng)
                    if plan.row_inputs is None
                    else self._draw_row(plan.row_inputs, rng)
                )
                chosen = _rank_row(row, rng)[:n_learnt]
            else:
                ranks = _rank_rows(self._scores(learnt, context, rng, draws), rng)
                chosen = ranks[0, :n_learnt].tolist()  # row 0 is the realised ranking
            order += [learnt[i] for i in chosen]
            for pos, idx in enumerate(chosen):
                if not context.propensities:
                    props.append(math.nan)
                    continue
                p = None  # (past exact_slots, _exact_propensity has no answer)
                if pos < self.exact_slots:
                    if key is not None:
                        p = self._cached(
                            ("exact", pos, idx, key),
                            lambda pos=pos, idx=idx: self._exact_propensity(
                                learnt, context, pos, idx
                            ),
                        )
                    else:
                        p = self._exact_propensity(learnt, context, pos, idx)
                if p is None and counts is not None:  # (1 + hits) / (1 + draws), never 0
                    p = (1.0 + counts[pos][idx]) / (1 + self.n_draws)
                if p is None:  # the frequency in the rankings drawn (1.0 when only one was)
                    p = 1.0 if ranks is None else float(np.mean(ranks[:, pos] == idx))
                props.append(p)
        if context.propensities:
            props = [min(1.0, max(MIN_PROPENSITY, p)) for p in props]
        else:
            props = [math.nan] * len(props)

        limit, pinned = plan.limit, plan.pinned
        if not pinned:  # the final list is a prefix of ``order`` (fresh arms first)
            shown = order[:limit]
            n_fresh = min(len(fresh_order), n_free, limit)
            return Ranking(
                order=tuple([a.key for a in shown]),
                propensities=tuple(props[: len(shown)]),
                explored=(True,) * n_fresh + (False,) * (len(shown) - n_fresh),
                pinned=(False,) * len(shown),
            )
        by_key = dict(zip((a.key for a in order), props, strict=True))
        explored = {a.key for a in fresh}
        final = place_pinned([a.key for a in order], pinned, limit)
        return Ranking(
            order=tuple(final),
            propensities=tuple(1.0 if k in pinned else by_key[k] for k in final),
            explored=tuple(k in explored and k not in pinned for k in final),
            pinned=tuple(k in pinned for k in final),
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one ranking of these arms in this context needs besides the draws."""

    arms: tuple[Arm, ...]  # held, so the identities in the memo key stay theirs
    pinned: dict[str, int]
    limit: int
    n_free: int  # slots left for arms that are not pinned
    fresh: list[Arm]  # in burn-in: shuffled first
    learnt: list[Arm]
    n_learnt: int  # slots the learnt arms fill
    estimate: bool  # later slots' propensities need Monte-Carlo rankings
    key: tuple | None  # the propensity cache key (None: not cached)
    row_inputs: object | None  # for _draw_row


def _rank_rows(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Arm indices by descending score in each row, ties broken uniformly at random."""
    tiebreak = rng.random(scores.shape)
    return np.lexsort((tiebreak, -scores), axis=-1)


def _rank_row(scores: list[float], rng: np.random.Generator) -> list[int]:
    """``_rank_rows`` for one row, in plain Python: the same draws from ``rng`` and the same
    order (a stable sort on (-score, tiebreak), as ``lexsort``), without numpy's per-call
    overhead on a handful of arms."""
    n = len(scores)
    if n == 0:
        return []
    tiebreak = rng.random(n).tolist()
    return sorted(range(n), key=lambda i: (-scores[i], tiebreak[i]))


def _affinity_factors(arms: Sequence[Arm], context: RankContext, weight: float) -> np.ndarray:
    return np.array([1.0 + weight * float(context.affinities.get(a.key, 0.0)) for a in arms])


class ThompsonPolicy(RankingPolicy):
    """Thompson sampling on Beta posteriors over decayed counts, blended with affinity.

    With ``borrow_pooled`` an audience's prior is centred on the arm's all-audience CTR with
    the same total weight ``prior_a + prior_b``: a new audience starts from what everyone else
    did instead of from ignorance, and with no pooled data it is exactly
    ``Beta(prior_a, prior_b)``.
    """

    def __init__(
        self,
        *,
        prior_a: float = 1.0,
        prior_b: float = 1.0,
        affinity_weight: float = 0.5,
        borrow_pooled: bool = True,
        burn_in: float = 10,
        n_draws: int = 200,
        quadrature_nodes: int = 256,
        cache_size: int = 0,
    ) -> None:
        super().__init__(burn_in=burn_in, n_draws=n_draws, cache_size=cache_size)
        if not (prior_a > 0 and prior_b > 0) or affinity_weight < 0:
            raise ValueError("priors must be positive and affinity_weight non-negative")
        self.prior_a, self.prior_b = prior_a, prior_b
        self.affinity_weight = affinity_weight
        self.borrow_pooled = borrow_pooled
        self.quadrature_nodes = quadrature_nodes
        self._params_memo: dict[tuple, tuple] = {}
        self._keys: dict[tuple, tuple] = {}

    exact_slots = 1

    def posterior(self, arm: Arm) -> tuple[float, float]:
        """Beta parameters (a, b) for the arm's CTR in the segment."""
        clicks, misses = arm.clicks, max(arm.impressions - arm.clicks, 0.0)
        a0, b0 = self.prior_a, self.prior_b
        if self.borrow_pooled and arm.pooled_impressions is not None:
            pc = arm.pooled_clicks or 0.0
            mean = (a0 + pc) / (a0 + b0 + max(arm.pooled_impressions, pc))
            a0, b0 = (
                (self.prior_a + self.prior_b) * mean,
                (self.prior_a + self.prior_b) * (1 - mean),
            )
        return a0 + clicks, b0 + misses

    def _cache_key(self, arms: Sequence[Arm], context: RankContext) -> tuple | None:
        """Posterior parameters to 0.1 % (3 decimals on a log scale) and the affinity factors.

        Parameters that close give propensities within about 0.1 % of each other, while new
        feedback changes them by more within seconds, so the cache follows the statistics.
        """
        aff = context.affinities
        prefs = tuple(aff.get(arm.key, 0.0) for arm in arms) if aff else ()
        memo = (tuple(map(id, arms)), prefs)
        hit = self._keys.get(memo)
        if hit is None:
            a, b = self._params(arms)
            w = self.affinity_weight
            factors = tuple(round(1.0 + w * float(aff.get(arm.key, 0.0)), 6) for arm in arms)
            key = (tuple(np.round(np.log(a), 3).tolist()), tuple(np.round(np.log(b), 3).tolist()))
            hit = self._remember(self._keys, memo, (tuple(arms), (*key, factors)))
        return hit[1]

    def _params(self, arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray]:
        a, b, _ = self._posteriors(arms)
        return a, b

    def _posteriors(self, arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray, list]:
        """(a, b) as arrays and as a list of pairs.

        Remembered by the arms' identities: one rank() asks up to three times (scores,
        cache key, exact propensity), and a server that reuses its Arm objects across
        requests (``rank_placement(arm_cache=…)``) asks again on every request. Arms are
        frozen and the entry holds them, so an identity cannot be reused while remembered.
        """
        memo = tuple(map(id, arms))
        hit = self._params_memo.get(memo)
        if hit is None:
            ab = np.array([self.posterior(a) for a in arms], dtype=float).reshape(-1, 2)
            hit = self._remember(
                self._params_memo, memo, (tuple(arms), (ab[:, 0], ab[:, 1], ab.tolist()))
            )
        return hit[1]

    @staticmethod
    def _remember(memo: dict, key: tuple, value: tuple) -> tuple:
        if len(memo) >= 4096:
            memo.clear()
        memo[key] = value
        return value

    def _scores(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, draws: int
    ) -> np.ndarray:
        if draws == 1:  # one ranking: scalar draws are cheaper and give the same stream
            return np.array([self._score_row(arms, context, rng)])
        a, b = self._params(arms)
        factors = _affinity_factors(arms, context, self.affinity_weight)
        return rng.beta(a, b, size=(draws, len(arms))) * factors

    def _score_row(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator
    ) -> list[float]:
        return self._draw_row(self._row_inputs(arms, context), rng)

    def _row_inputs(self, arms: Sequence[Arm], context: RankContext) -> object | None:
        aff, w = context.affinities, self.affinity_weight
        factors = [1.0 + w * float(aff.get(arm.key, 0.0)) for arm in arms] if aff else None
        return self._posteriors(arms)[2], factors

    def _draw_row(self, inputs: object, rng: np.random.Generator) -> list[float]:
        pairs, factors = inputs  # type: ignore[misc]
        beta = rng.beta
        row = [beta(a, b) for a, b in pairs]
        if factors is not None:
            row = [x * f for x, f in zip(row, factors, strict=True)]
        return row

    def _exact_propensity(
        self, arms: Sequence[Arm], context: RankContext, position: int, index: int
    ) -> float | None:
        if position != 0:
            return None
        return first_probability(
            *self._params(arms),
            _affinity_factors(arms, context, self.affinity_weight),
            index,
            self.quadrature_nodes,
        )

    def first_probabilities(self, arms: Sequence[Arm], context: RankContext) -> np.ndarray:
        """P(each arm is ranked first) ignoring burn-in and pins: a target policy's action
        distribution for off-policy evaluation."""
        a, b = self._params(arms)
        m = _affinity_factors(arms, context, self.affinity_weight)
        p = np.array([first_probability(a, b, m, i, self.quadrature_nodes) for i in range(len(a))])
        return p / p.sum()


def first_probability(
    a: np.ndarray, b: np.ndarray, m: np.ndarray, index: int, nodes: int = 256
) -> float:
    """P(m_i X_i > m_j X_j for all j != i) with independent ``X_j ~ Beta(a_j, b_j)``.

    ``P = integral of G(x) dF_i(x)`` with ``G(x) = prod_{j != i} F_j(m_i x / m_j)``, as a
    Riemann-Stieltjes sum over ``nodes`` equal steps spanning arm i's posterior from its
    1e-9 to its 1 - 1e-9 quantile (so a peaked posterior is resolved as well as a flat one).
    G is monotone and bounded, so the error is at most the largest step of F_i and in
    practice second order: about 1e-4 with 256 nodes, checked against 20,000-node sums.
    """
    a, b, m = (np.asarray(v, dtype=float) for v in (a, b, m))
    if len(a) == 1:
        return 1.0
    lo, hi = special.betaincinv(a[index], b[index], [_TAIL, 1.0 - _TAIL])
    x = np.linspace(lo, hi, nodes + 1)
    cdf = special.betainc(a[index], b[index], x)
    mid = 0.5 * (x[:-1] + x[1:])
    others = np.arange(len(a)) != index
    y = np.clip(m[index] * mid[None, :] / m[others, None], 0.0, 1.0)
    g = np.prod(special.betainc(a[others, None], b[others, None], y), axis=0)
    # the mass beyond the top node is (almost) surely first, the mass below it (almost) never
    return float(np.sum(g * np.diff(cdf)) + (1.0 - cdf[-1]) * g[-1])


class PopularityPolicy(RankingPolicy):
    """Non-personalised baseline: rank by the all-audience posterior mean CTR (greedy)."""

    def __init__(
        self, *, prior_a: float = 1.0, prior_b: float = 1.0, burn_in: float = 10, n_draws: int = 200
    ) -> None:
        super().__init__(burn_in=burn_in, n_draws=n_draws)
        self.prior_a, self.prior_b = prior_a, prior_b

    def _scores(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, draws: int
    ) -> np.ndarray:
        means = [
            (self.prior_a + c) / (self.prior_a + self.prior_b + max(n, c))
            for c, n in (
                (
                    a.clicks if a.pooled_clicks is None else a.pooled_clicks,
                    a.impressions if a.pooled_impressions is None else a.pooled_impressions,
                )
                for a in arms
            )
        ]
        return np.broadcast_to(np.array(means), (draws, len(arms)))


class UniformPolicy(RankingPolicy):
    """Uniformly random order: the logging policy that makes replay evaluation unbiased."""

    def __init__(self, *, n_draws: int = 200) -> None:
        super().__init__(burn_in=0, n_draws=n_draws)

    exact_slots = math.inf

    def _scores(
        self, arms: Sequence[Arm], context: RankContext, rng: np.random.Generator, draws: int
    ) -> np.ndarray:
        return rng.random((draws, len(arms)))

    def _exact_propensity(
        self, arms: Sequence[Arm], context: RankContext, position: int, index: int
    ) -> float | None:
        return 1.0 / len(arms)  # every arm is equally likely in every slot
