"""Offline evaluation of a ranking policy from a logged decision stream.

Two estimators of a new policy's CTR on the first slot, from decisions another policy made:

* **Replay** (Li, Chu, Langford & Wang 2011, "Unbiased Offline Evaluation of
  Contextual-bandit-based News Article Recommendation Algorithms"): walk the log in order, ask
  the new policy what it would show, and keep only the events where it agrees with what was
  logged; the new policy learns from those events only. When the logging policy chose
  uniformly at random, the kept events are distributed exactly as if the new policy had been
  live, so the mean kept reward estimates its CTR (over its first ``n`` decisions) without
  bias. It also evaluates *learning* policies, which is why it is the default.
* **IPS / self-normalised IPS** for a non-uniform logging policy (an epsilon-greedy explore
  slice, or Thompson sampling itself): weight each logged reward by
  ``target(a | x) / logged propensity``. IPS is unbiased whenever the logged propensity is
  positive wherever the target acts; SNIPS divides by the sum of the weights instead of ``n``,
  trading a small bias for much less variance when weights are uneven. Both evaluate a fixed
  target policy (e.g. the Thompson policy frozen at today's statistics).

The logged propensities come from :class:`~kirana.automation.ranking.Decision`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kirana.automation.bandit import Arm, RankContext, RankingPolicy
from kirana.automation.content import POOLED_SEGMENT
from kirana.automation.ranking import Decision
from kirana.automation.stats import FeedbackStats


@dataclass(frozen=True)
class Estimate:
    """A CTR estimate with its standard error; ``n`` events used, ``effective_n`` after
    weighting ((sum w)^2 / sum w^2; equal to ``n`` for replay)."""

    value: float
    stderr: float
    n: int
    effective_n: float

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return self.value - z * self.stderr, self.value + z * self.stderr


@dataclass(frozen=True)
class LoggedDecision:
    """One logged first-slot choice: what could be shown, what was, and what happened."""

    candidates: tuple[str, ...]
    action: str
    reward: float
    propensity: float
    segment: str = POOLED_SEGMENT
    affinities: Mapping[str, float] = field(default_factory=dict)
    t: float = 0.0


class ReplayPolicy(Protocol):
    def choose(self, event: LoggedDecision, rng: np.random.Generator) -> str: ...

    def update(self, event: LoggedDecision) -> None: ...


def check_propensities(p: np.ndarray | Iterable[float], name: str = "propensity") -> np.ndarray:
    """The propensities as an array, refusing any outside (0, 1] (naming the first)."""
    arr = np.asarray(list(p) if not isinstance(p, np.ndarray) else p, dtype=float)
    bad = ~((arr > 0) & (arr <= 1))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}]: must be in (0, 1] (got {arr[i]!r})")
    return arr


def _mean_estimate(values: np.ndarray) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, 0.0)
    se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate(float(np.mean(values)), se, n, float(n))


def replay_estimate(rewards: np.ndarray, matched: np.ndarray) -> Estimate:
    """Replay for a fixed policy, vectorised: mean reward over events where it agreed."""
    rewards, matched = np.asarray(rewards, dtype=float), np.asarray(matched, dtype=bool)
    return _mean_estimate(rewards[matched])


def replay(
    log: Iterable[LoggedDecision], policy: ReplayPolicy, rng: np.random.Generator
) -> Estimate:
    """Li et al.'s replay of a (possibly learning) policy over a uniformly-logged stream."""
    kept: list[float] = []
    for event in log:
        if policy.choose(event, rng) == event.action:
            kept.append(event.reward)
            policy.update(event)
    return _mean_estimate(np.asarray(kept, dtype=float))


def _weights(target: np.ndarray, logged: np.ndarray, clip: float | None) -> np.ndarray:
    target = np.asarray(target, dtype=float)
    if np.any((target < 0) | (target > 1)):
        raise ValueError("target: probabilities must be in [0, 1]")
    w = target / check_propensities(logged)
    return w if clip is None else np.minimum(w, clip)


def ips(
    rewards: np.ndarray, target: np.ndarray, logged: np.ndarray, *, clip: float | None = None
) -> Estimate:
    """Inverse propensity scoring: ``mean(target/logged * reward)``.

    ``target`` is the evaluated policy's probability of each logged action, ``logged`` the
    logging policy's. ``clip`` caps the weights (biased, lower variance).
    """
    w = _weights(target, logged, clip)
    est = _mean_estimate(w * np.asarray(rewards, dtype=float))
    ess = float(w.sum() ** 2 / np.sum(w**2)) if np.any(w) else 0.0
    return Estimate(est.value, est.stderr, est.n, ess)


def snips(
    rewards: np.ndarray, target: np.ndarray, logged: np.ndarray, *, clip: float | None = None
) -> Estimate:
    """Self-normalised IPS: ``sum(w * reward) / sum(w)``, with a delta-method standard error."""
    w = _weights(target, logged, clip)
    r = np.asarray(rewards, dtype=float)
    total = w.sum()
    if total <= 0:
        return Estimate(math.nan, math.nan, len(r), 0.0)
    value = float(np.sum(w * r) / total)
    se = float(math.sqrt(np.sum(w**2 * (r - value) ** 2)) / total)
    return Estimate(value, se, len(r), float(total**2 / np.sum(w**2)))


class LearningReplay:
    """Adapts a Kirana :class:`RankingPolicy` to :func:`replay`: it chooses the first slot
    from its own :class:`FeedbackStats` and learns from the matched events, per segment."""

    def __init__(
        self, policy: RankingPolicy, stats: FeedbackStats | None = None, placement: str = "replay"
    ) -> None:
        self.policy = policy
        self.stats = stats if stats is not None else FeedbackStats()
        self.placement = placement

    def _arm(self, key: str, segment: str, t: float) -> Arm:
        seg = self.stats.counts((self.placement, key, segment), t)  # type: ignore[arg-type]
        if segment == POOLED_SEGMENT:
            return Arm.from_counts(key, seg)
        pooled = self.stats.counts((self.placement, key, POOLED_SEGMENT), t)  # type: ignore[arg-type]
        return Arm.from_counts(key, seg, pooled)

    def arms(self, candidates: Iterable[str], segment: str, t: float) -> list[Arm]:
        """The candidates' arms as the policy would see them at ``t``."""
        return [self._arm(k, segment, float(t)) for k in candidates]

    def choose(self, event: LoggedDecision, rng: np.random.Generator) -> str:
        context = RankContext(limit=1, affinities=event.affinities, propensities=False)
        return self.policy.rank(
            self.arms(event.candidates, event.segment, event.t), context, rng
        ).order[0]

    def update(self, event: LoggedDecision) -> None:
        self.stats.observe(
            self.placement, event.action, event.segment, event.t, clicked=event.reward > 0
        )


def from_decision(
    decision: Decision, clicked: Collection[str], widget: str | None = None
) -> LoggedDecision:
    """The first-slot choice of a :class:`~kirana.automation.ranking.Decision` as a log row.

    With ``widget=None`` the action is the top widget (rewarded by a click on any of its
    items); with a widget key, the first item of that widget. ``clicked`` holds the tracking
    ids that received a click.
    """
    if not decision.widgets:
        raise ValueError("decision: nothing was shown")
    if widget is None:
        top = decision.widgets[0]
        hit = any(item.tracking_id in clicked for item in top.items)
        candidates, action, propensity = decision.candidates, top.key, top.propensity
    else:
        top = next(w for w in decision.widgets if w.key == widget)
        first = top.items[0]
        hit = first.tracking_id in clicked
        candidates, action, propensity = top.candidates, first.key, first.propensity
    return LoggedDecision(
        candidates=tuple(candidates),
        action=action,
        reward=float(hit),
        propensity=propensity,
        segment=decision.segment,
        t=decision.at.timestamp(),
    )
