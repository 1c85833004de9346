"""``rank_placement``: one personalised, logged decision for one user at one placement.

Steps: eviction verdicts for the user's segment (:mod:`.eviction`), the business rules that
decide what may be shown (:mod:`.rules`), the policy's ranking of widgets and, inside each
content widget, of items (:mod:`.bandit`); recommendation widgets keep their recommender's
order. The :class:`Decision` records everything an off-policy evaluation or a feedback
consumer needs: the candidates, the shown order, each slot's propensity, the content epochs,
and a tracking id per shown item, ``{decision_id}.{widget position}.{item position}``, which
the front end attaches to the Segment events it sends back.

Cold start falls out of the parts: an arm with no data is in burn-in and explored; a user with
no affinities is ranked by the sampled CTR alone (popularity, in their audience or overall).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, MutableMapping
from datetime import datetime

import msgspec
import numpy as np

from kirana.automation import rules
from kirana.automation.bandit import Arm, RankContext, RankingPolicy, ThompsonPolicy
from kirana.automation.content import POOLED_SEGMENT, Epoch, Placement
from kirana.automation.eviction import EvictionRule, evicted, review
from kirana.automation.rules import UserContext
from kirana.automation.stats import NO_EPOCH, FeedbackStats, StatsKey, item_arm
from kirana.automation.tracking import FeedbackKind, feedback_targets

FEEDBACK_EVENTS: Mapping[str, FeedbackKind] = {
    "Promotion Viewed": "impression",
    "Promotion Clicked": "click",
    "Product Clicked": "click",
    "Product Added": "click",
}


class ShownItem(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    position: int
    tracking_id: str
    propensity: float  # given that the widget is shown
    explored: bool = False
    arm: str | None = None  # stats arm for content items; None for recommended products
    epoch: Epoch = NO_EPOCH


class ShownWidget(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    kind: str
    position: int
    propensity: float
    pinned: bool
    explored: bool
    epoch: Epoch
    items: tuple[ShownItem, ...]
    candidates: tuple[str, ...]  # item keys the policy chose among


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: str
    placement: str
    user_id: str
    segment: str
    at: datetime
    widgets: tuple[ShownWidget, ...]
    candidates: tuple[str, ...]  # widget keys the policy chose among
    evicted: tuple[str, ...]  # arms evicted for this segment

    def locate(self, tracking_id: str) -> tuple[ShownWidget, ShownItem]:
        decision_id, w, i = parse_tracking_id(tracking_id)
        if decision_id != self.decision_id:
            raise KeyError(f"{tracking_id!r} belongs to another decision")
        try:
            widget = self.widgets[w]
            return widget, widget.items[i]
        except IndexError:
            raise KeyError(f"{tracking_id!r}: no such slot") from None

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


def new_decision_id(rng: np.random.Generator) -> str:
    """``rng.bytes(8).hex()``, the same string from the same draws, at a third of the cost:
    ``Generator.bytes`` is two uint32 draws through ``integers(size=2)``, whose array set-up
    costs more than the draws; two scalar draws of the same kind give the same values."""
    draw = rng.integers
    return _TWO_UINT32.pack(
        draw(0, 4294967296, dtype=np.uint32), draw(0, 4294967296, dtype=np.uint32)
    ).hex()


_TWO_UINT32 = struct.Struct("<II")


def tracking_id(decision_id: str, widget_position: int, item_position: int) -> str:
    return f"{decision_id}.{widget_position}.{item_position}"


def parse_tracking_id(value: str) -> tuple[str, int, int]:
    decision_id, w, i = value.rsplit(".", 2)
    return decision_id, int(w), int(i)


def _arm(
    stats: FeedbackStats, placement: str, arm: str, segment: str, now: float, epoch: Epoch
) -> Arm:
    seg = stats.counts(StatsKey(placement, arm, segment), now, epoch=epoch)
    if segment == POOLED_SEGMENT:
        return Arm.from_counts(arm, seg)
    return Arm.from_counts(
        arm, seg, stats.counts(StatsKey(placement, arm, POOLED_SEGMENT), now, epoch=epoch)
    )


def rank_placement(
    placement: Placement,
    user: UserContext,
    stats: FeedbackStats,
    now: datetime,
    rng: np.random.Generator,
    *,
    policy: RankingPolicy | None = None,
    eviction: EvictionRule | None = None,
    decision_id: str | None = None,
    evicted_arms: frozenset[str] | None = None,
    arm_cache: MutableMapping[tuple, Arm] | None = None,
) -> Decision:
    """Choose and order the widgets and items ``user`` sees at ``placement`` now.

    For servers: ``evicted_arms`` passes the eviction verdicts kept per segment instead of
    reviewing every arm on every request (they change only when the statistics do), and
    ``arm_cache`` memoises each arm's counts by (placement, arm, segment, epoch) across
    requests; the caller empties it when the statistics change (or every second, as counts
    decay by a relative 1e-6 a second).
    """
    if now.utcoffset() is None:
        raise ValueError("now: must include a UTC offset")
    policy = policy or ThompsonPolicy()
    segment = user.stats_segment
    decision_id = decision_id or new_decision_id(rng)
    if evicted_arms is None:
        evicted_arms = evicted(review(placement, stats, segment, now, eviction))
    gone = evicted_arms
    t = now.timestamp()

    kept: dict[str, rules.Candidate] = {}
    for cand in rules.candidates(placement, user, now):
        w = cand.widget
        if gone:  # (usually nothing is evicted)
            if w.key in gone and w.pinned_slot is None:
                continue
            if cand.items:
                items = tuple(i for i in cand.items if item_arm(w.key, i.key) not in gone)
                if not items:
                    continue
                cand = rules.Candidate(w, items=items)
        kept[w.key] = cand

    def arm(key: str, epoch: Epoch) -> Arm:
        if arm_cache is None:
            return _arm(stats, placement.key, key, segment, t, epoch)
        memo = (placement.key, key, segment, epoch)
        hit = arm_cache.get(memo)
        if hit is None:
            hit = arm_cache[memo] = _arm(stats, placement.key, key, segment, t, epoch)
        return hit

    arms = [arm(k, c.widget.epoch) for k, c in kept.items()]
    context = RankContext(
        limit=placement.max_widgets,
        affinities={k: user.affinities[k] for k in kept if k in user.affinities},
        pinned={
            k: c.widget.pinned_slot for k, c in kept.items() if c.widget.pinned_slot is not None
        },
    )
    ranking = policy.rank(arms, context, rng)

    shown: list[ShownWidget] = []
    for wpos, key in enumerate(ranking.order):
        cand, w = kept[key], kept[key].widget
        items: list[ShownItem] = []
        if cand.items:
            by_arm = {item_arm(w.key, i.key): i for i in cand.items}
            item_ranking = policy.rank(
                [arm(a, i.epoch) for a, i in by_arm.items()],
                RankContext(
                    limit=w.max_items,
                    affinities={
                        a: user.affinities[i.key]
                        for a, i in by_arm.items()
                        if i.key in user.affinities
                    },
                ),
                rng,
            )
            for ipos, a in enumerate(item_ranking.order):
                items.append(
                    ShownItem(
                        key=by_arm[a].key,
                        position=ipos,
                        tracking_id=f"{decision_id}.{wpos}.{ipos}",  # tracking_id()
                        propensity=item_ranking.propensities[ipos],
                        explored=item_ranking.explored[ipos],
                        arm=a,
                        epoch=by_arm[a].epoch,
                    )
                )
        else:
            for ipos, product in enumerate(cand.products[: w.max_items]):
                items.append(
                    ShownItem(
                        key=product,
                        position=ipos,
                        tracking_id=f"{decision_id}.{wpos}.{ipos}",  # tracking_id()
                        propensity=1.0,  # the recommender's order is deterministic
                    )
                )
        shown.append(
            ShownWidget(
                key=key,
                kind=w.kind,
                position=wpos,
                propensity=ranking.propensities[wpos],
                pinned=ranking.pinned[wpos],
                explored=ranking.explored[wpos],
                epoch=w.epoch,
                items=tuple(items),
                candidates=cand.keys,
            )
        )
    return Decision(
        decision_id=decision_id,
        placement=placement.key,
        user_id=user.user_id,
        segment=segment,
        at=now,
        widgets=tuple(shown),
        candidates=tuple(kept),
        evicted=tuple(sorted(gone)),
    )


def feedback_kind(event: str) -> FeedbackKind | None:
    """What a Segment event means for the stats (``None``: not feedback)."""
    return FEEDBACK_EVENTS.get(event)


def record_feedback(
    stats: FeedbackStats, decision: Decision, tracking_id: str, event: str, t: datetime | float
) -> int:
    """Apply one Segment event carrying ``tracking_id`` to the stats; returns arms updated.

    An item impression counts for its content arm; the widget's impression is counted once,
    on its first item. A click counts for the item and its widget. Consumers should pass each
    (tracking id, kind) once: a ``Product Clicked`` followed by ``Product Added`` on the same
    tracking id is one click.
    """
    kind = feedback_kind(event)
    if kind is None:
        return 0
    widget, item = decision.locate(tracking_id)
    targets = feedback_targets(kind, widget.key, widget.epoch, item.arm, item.epoch, item.position)
    for arm, epoch in targets:
        stats.observe(
            decision.placement,
            arm,
            decision.segment,
            t,
            clicked=kind == "click",
            impression=kind == "impression",
            epoch=epoch,
        )
    return len(targets)
