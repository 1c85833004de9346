"""The personalise service: one request in, one ranked, tracked and logged feed out.

Per request: resolve the requester's profile (cached), apply experiment assignments (the
hook below), fill recommendation widgets from the serving store (falling back to the
``popular`` list for new and anonymous users), read frequency-cap impressions if the placement
caps anything, then let the pure core decide (:func:`~kirana.automation.ranking.rank_placement`:
rules, eviction, Thompson sampling with the user's affinities), attach a tracking token to
every shown item, and queue the decision for the log. Content and statistics come from
in-memory caches refreshed in the background (:mod:`kirana.serving.caches`); the only I/O on
the request path is point reads (profile, per-user lists, cap impressions) and no writes.

Experiments: :class:`ExperimentAssigner` is where server-side assignment plugs in. It gets
the resolved user and the placement and returns the variations the user is in; an
assignment may name a ranking ``policy`` for the variation (``thompson``, ``popularity``,
``uniform``). The response and the decision log carry the assignments, so exposures and
offline evaluation see them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec
import numpy as np

from kirana.automation.affinity import affinities, user_tags
from kirana.automation.bandit import (
    Arm,
    PopularityPolicy,
    RankingPolicy,
    ThompsonPolicy,
    UniformPolicy,
)
from kirana.automation.eviction import EvictionRule, evicted, review
from kirana.automation.ranking import Decision, new_decision_id, rank_placement
from kirana.automation.rules import UserContext
from kirana.automation.specs import CompiledPlacement
from kirana.automation.tracking import encode_tokens
from kirana.config import AutomationSettings
from kirana.serving.caches import ContentCache, CountsView, RecommendationCache, StatsCache
from kirana.serving.decision_log import LoggedRow
from kirana.serving.feedback_store import FeedbackStore
from kirana.serving.profiles import ProfileReader, ResolvedUser
from kirana.serving.responses import Assignment, FeedItem, FeedWidget, PersonalizeResponse

PER_USER = frozenset({"buy_again", "recommended_for_you"})
FALLS_BACK_TO_POPULAR = frozenset({"recommended_for_you", "popular"})
POPULAR = "popular"
PROPENSITY_CACHE = 4096  # ranking distributions whose propensities are kept (per policy)
VERDICT_SECONDS = 10.0  # eviction verdicts are recomputed at least this often
AFFINITY_CACHE = 10_000  # (placement, tag strengths) whose affinities are kept


class PlacementNotFound(LookupError):
    """The placement does not exist (the message lists those that do)."""


class ExperimentAssigner(Protocol):
    """Server-side experiment assignment for one personalise request."""

    def __call__(self, user: ResolvedUser, placement: str) -> Sequence[Assignment]: ...


@dataclass(frozen=True)
class PersonalizeRequest:
    placement: str
    user_id: str | None = None
    anonymous_id: str | None = None
    limit: int | None = None  # at most this many widgets (default: the placement's max)
    item_ids: tuple[str, ...] = ()  # what the user is looking at (frequently bought together)


def make_policies(settings: AutomationSettings) -> dict[str, RankingPolicy]:
    return {
        "thompson": ThompsonPolicy(burn_in=settings.burn_in, cache_size=PROPENSITY_CACHE),
        "popularity": PopularityPolicy(burn_in=settings.burn_in),
        "uniform": UniformPolicy(),
    }


class PersonalizeService:
    """Stateless per request; the caches and the decision log are shared."""

    def __init__(
        self,
        settings: AutomationSettings,
        profiles: ProfileReader,
        content: ContentCache,
        stats: StatsCache,
        recommendations: RecommendationCache,
        feedback: FeedbackStore,
        log_decision: Callable[[LoggedRow], None],
        *,
        assigner: ExperimentAssigner | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.settings = settings
        self.profiles = profiles
        self.content = content
        self.stats = stats
        self.recommendations = recommendations
        self.feedback = feedback
        self.log_decision = log_decision
        self.assigner = assigner
        self.policies = make_policies(settings)
        self.eviction = EvictionRule(
            threshold=settings.evict_below_ctr,
            confidence=settings.evict_confidence,
            min_impressions=settings.evict_min_impressions,
        )
        self.rng = rng if rng is not None else np.random.default_rng()
        self._verdicts: dict[tuple, frozenset[str]] = {}
        self._counts = CountsView(stats)
        self._arms: dict[tuple, Arm] = {}
        self._arms_stamp: tuple[int, int] = (-1, -1)
        self._affinity_memo: dict[tuple, tuple[CompiledPlacement, dict[str, float]]] = {}

    def personalize(
        self,
        request: PersonalizeRequest,
        *,
        now: datetime | None = None,
        assigner: ExperimentAssigner | None = None,
    ) -> PersonalizeResponse:
        compiled = self.content.get(request.placement)
        if compiled is None and self.content.refresh():  # created since the last refresh?
            compiled = self.content.get(request.placement)
        if compiled is None:
            known = ", ".join(sorted(self.content.placements)) or "none yet"
            raise PlacementNotFound(
                f"no placement {request.placement!r} (known: {known}); create it with "
                "POST /v1/content/placements or `kirana content placements create`"
            )
        now = now or datetime.now(UTC)
        assign = assigner or self.assigner
        # experiment targeting reads traits: only when an experiment applies here
        wants = getattr(assign, "wants_traits", None)
        self.profiles.with_traits = assign is not None and (
            wants is None or wants(request.placement)
        )
        user = self.profiles.resolve(request.user_id, request.anonymous_id)
        assignments = tuple(assign(user, request.placement)) if assign else ()
        policy_name = next((a.policy for a in assignments if a.policy), None) or "thompson"
        policy = self.policies.get(policy_name, self.policies["thompson"])

        segment = self._segment(user)
        lists, sources = self._recommendations(compiled, user, request.item_ids)
        context = UserContext(
            user.key,
            audiences=user.audiences,
            segment=segment,
            affinities=self._affinities(compiled, user),
            recommendations={k: [p for p, _ in v] for k, v in lists.items()},
            impressions=self._impressions(compiled, user, now),
        )
        decision = Decision(
            decision_id=new_decision_id(self.rng),
            placement=request.placement,
            user_id=user.key,
            segment=segment or "all",
            at=now,
            widgets=(),
            candidates=(),
            evicted=(),
        )
        if compiled.placement is not None:
            decision = rank_placement(
                compiled.placement,
                context,
                self._counts,  # type: ignore[arg-type]  (the reads rank_placement makes)
                now,
                self.rng,
                policy=policy,
                eviction=self.eviction,
                decision_id=decision.decision_id,
                evicted_arms=self._evicted(compiled, segment or "all", now),
                arm_cache=self._arms_for(now),
            )
        if request.limit is not None and len(decision.widgets) > request.limit:
            decision = msgspec.structs.replace(decision, widgets=decision.widgets[: request.limit])
        self.log_decision(
            LoggedRow(
                decision,
                user.profile_id,
                policy_name,
                tuple(
                    {"experiment_id": a.experiment_id, "variation_id": a.variation_id}
                    for a in assignments
                ),
            )
        )
        return self._response(decision, compiled, user, lists, sources, assignments)

    # -- inputs --------------------------------------------------------------------

    def _arms_for(self, now: datetime) -> dict[tuple, Arm]:
        """Arms (decayed counts) shared by every request within one second and one snapshot
        of the statistics."""
        stamp = (self.stats.rev, int(now.timestamp()))
        if stamp != self._arms_stamp:
            self._arms, self._arms_stamp = {}, stamp
        return self._arms

    def _evicted(self, compiled: CompiledPlacement, segment: str, now: datetime) -> frozenset[str]:
        """Eviction verdicts per placement and segment, recomputed when the statistics or the
        content change (and every ``VERDICT_SECONDS``, as counts decay)."""
        assert compiled.placement is not None
        key = (
            compiled.spec.key,
            segment,
            self.stats.rev,
            self.content.revision,
            int(now.timestamp() // VERDICT_SECONDS),
        )
        hit = self._verdicts.get(key)
        if hit is None:
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            verdicts = review(compiled.placement, self.stats.stats, segment, now, self.eviction)
            hit = self._verdicts[key] = evicted(verdicts)
        return hit

    def _affinities(self, compiled: CompiledPlacement, user: ResolvedUser) -> dict[str, float]:
        """The user's affinity to each content key of the placement: the same for everyone
        with the same tag strengths (most users have one favourite department), so kept per
        (compiled placement, strengths). Shared between requests: read only."""
        strengths = user_tags(user.computed, self.settings.affinity_traits)
        if not strengths:
            return {}
        key = (id(compiled), tuple(strengths.items()))
        hit = self._affinity_memo.get(key)
        if hit is None or hit[0] is not compiled:  # (the entry holds the placement: no id reuse)
            if len(self._affinity_memo) >= AFFINITY_CACHE:
                self._affinity_memo.clear()
            hit = self._affinity_memo[key] = (compiled, affinities(compiled.tags, strengths))
        return hit[1]

    def _segment(self, user: ResolvedUser) -> str | None:
        """The audience whose statistics this user learns from and is ranked by."""
        if not user.audiences:
            return None
        preferred = self.settings.learning_audiences
        if preferred:
            return next((a for a in preferred if a in user.audiences), None)
        return min(user.audiences)

    def _recommendations(
        self, compiled: CompiledPlacement, user: ResolvedUser, item_ids: tuple[str, ...]
    ) -> tuple[dict[str, list[tuple[str, float]]], dict[str, str]]:
        """Products per recommendation widget, and which serving list each came from."""
        lists: dict[str, list[tuple[str, float]]] = {}
        sources: dict[str, str] = {}
        recs = self.recommendations
        for key, widget in compiled.widgets.items():
            if not widget.is_recommendation:
                continue
            name = widget.serving_name
            found: list[tuple[str, float]] = []
            if widget.kind in PER_USER:
                who = user.recommendation_key
                found = recs.per_user(name, who) if who else []
            elif widget.kind == "frequently_bought_together":
                seen = set(item_ids)
                for item in item_ids:
                    for product, score in recs.shared(name, item):
                        if product not in seen:
                            seen.add(product)
                            found.append((product, score))
            else:
                found = recs.shared(name, "*")
            if not found and widget.kind in FALLS_BACK_TO_POPULAR and name != POPULAR:
                found, name = recs.shared(POPULAR, "*"), POPULAR
            if found:
                lists[key] = found[: widget.max_items * 2]
                sources[key] = name
        return lists, sources

    def _impressions(
        self, compiled: CompiledPlacement, user: ResolvedUser, now: datetime
    ) -> dict[str, list[datetime]]:
        capped = compiled.capped_widgets
        if not capped:
            return {}
        hours = max(compiled.widgets[k].frequency_cap.hours for k in capped)  # type: ignore[union-attr]
        since = (now - timedelta(hours=hours)).timestamp()
        return self.feedback.impressions_of(user.key, capped, since)

    # -- output --------------------------------------------------------------------

    def _response(
        self,
        decision: Decision,
        compiled: CompiledPlacement,
        user: ResolvedUser,
        lists: dict[str, list[tuple[str, float]]],
        sources: dict[str, str],
        assignments: tuple[Assignment, ...],
    ) -> PersonalizeResponse:
        widgets = []
        for shown in decision.widgets:
            spec = compiled.widgets[shown.key]
            scores = dict(lists.get(shown.key, ()))
            tokens = encode_tokens(
                decision.decision_id,
                shown.position,
                decision.placement,
                decision.segment,
                shown.key,
                shown.epoch,
                [(item.position, item.arm, item.epoch) for item in shown.items],
            )
            items = []
            for item, token in zip(shown.items, tokens, strict=True):
                if item.arm is None:
                    items.append(
                        FeedItem(
                            key=item.key,
                            type="product",
                            tracking_id=token,
                            score=scores.get(item.key),
                        )
                    )
                else:
                    content = compiled.items[(shown.key, item.key)]
                    items.append(
                        FeedItem(
                            key=item.key,
                            type="content",
                            tracking_id=token,
                            title=content.title,
                            template=content.template,
                            payload=content.payload,
                        )
                    )
            widgets.append(
                FeedWidget(
                    key=shown.key,
                    kind=shown.kind,
                    position=shown.position,
                    title=spec.title,
                    template=spec.template,
                    source=sources.get(shown.key),
                    items=items,
                )
            )
        return PersonalizeResponse(
            decision_id=decision.decision_id,
            placement=decision.placement,
            profile_id=user.profile_id,
            segment=decision.segment,
            cold_start=not (
                user.audiences
                or user.computed
                or any(
                    compiled.widgets[k].kind in PER_USER and s != POPULAR
                    for k, s in sources.items()
                )
            ),
            experiments=list(assignments),
            widgets=widgets,
        )
