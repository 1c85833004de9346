"""Automation: per-user content eviction and sorting from preferences, impressions and CTR.

A placement (a point in the buying journey: ``home_feed``, ``product_page``, ``cart``,
``order_confirmation``) holds candidate widgets, and widgets hold items. For each request,
:func:`rank_placement` applies the business rules (:mod:`.rules`), drops arms that are
confidently poor for the user's audience (:mod:`.eviction`), and orders widgets and items with
Thompson sampling on time-decayed click-through statistics learnt per audience (:mod:`.stats`,
:mod:`.bandit`; Chapelle & Li 2011), blended with the user's affinities. Every decision is
logged with tracking ids and propensities so the Segment feedback (``Promotion Viewed``,
``Promotion Clicked``, ``Product Clicked``, ``Product Added``) can update the statistics and
new policies can be evaluated offline before they ship (:mod:`.replay`; Li et al. 2011).

Everything here is pure (no I/O): the content store, the stats store and the event consumers
live elsewhere. See docs/automation.md.
"""

from kirana.automation.bandit import (
    Arm,
    PopularityPolicy,
    RankContext,
    Ranking,
    RankingPolicy,
    ThompsonPolicy,
    UniformPolicy,
    first_probability,
)
from kirana.automation.content import (
    ContentError,
    ContentItem,
    FrequencyCap,
    Placement,
    Schedule,
    Widget,
    dump_placement,
    load_placement,
)
from kirana.automation.eviction import EvictionRule, Verdict, evicted, judge, review
from kirana.automation.ranking import (
    FEEDBACK_EVENTS,
    Decision,
    ShownItem,
    ShownWidget,
    feedback_kind,
    parse_tracking_id,
    rank_placement,
    record_feedback,
    tracking_id,
)
from kirana.automation.replay import (
    Estimate,
    LearningReplay,
    LoggedDecision,
    check_propensities,
    from_decision,
    ips,
    replay,
    replay_estimate,
    snips,
)
from kirana.automation.rules import Candidate, UserContext, place_pinned
from kirana.automation.stats import Counts, FeedbackStats, StatsKey, item_arm

__all__ = [
    "FEEDBACK_EVENTS",
    "Arm",
    "Candidate",
    "ContentError",
    "ContentItem",
    "Counts",
    "Decision",
    "Estimate",
    "EvictionRule",
    "FeedbackStats",
    "FrequencyCap",
    "LearningReplay",
    "LoggedDecision",
    "Placement",
    "PopularityPolicy",
    "RankContext",
    "Ranking",
    "RankingPolicy",
    "Schedule",
    "ShownItem",
    "ShownWidget",
    "StatsKey",
    "ThompsonPolicy",
    "UniformPolicy",
    "UserContext",
    "Verdict",
    "Widget",
    "check_propensities",
    "dump_placement",
    "evicted",
    "feedback_kind",
    "first_probability",
    "from_decision",
    "ips",
    "item_arm",
    "judge",
    "load_placement",
    "parse_tracking_id",
    "place_pinned",
    "rank_placement",
    "record_feedback",
    "replay",
    "replay_estimate",
    "review",
    "snips",
    "tracking_id",
]
