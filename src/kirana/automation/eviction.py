"""Content eviction: stop showing an arm once it is *confidently* poor, take it back when it
changes.

Thompson sampling already shows a poor arm less and less, but never quite never, and an editor
wants a dead banner gone, and counted. The rule: with the Beta posterior of the arm's CTR in
the user's segment (decayed counts, as the ranking uses), evict when

    impressions >= min_impressions  and  P(ctr > threshold) < confidence

e.g. at least 200 impressions and under a 5 % chance of beating a 0.5 % CTR. The impression
floor keeps a handful of unlucky early impressions from killing new content; the posterior
probability (rather than the raw CTR) makes the rule stricter the less evidence there is.

Re-admission needs no state. Feedback is stored with the content's epoch
``(version, schedule start)``; when the content's epoch differs from the stored one the
evidence describes something else (an edited creative, a campaign run again in a new window),
so the arm is ``readmitted`` and learnt afresh. Decay also paroles an arm eventually: with no
new impressions its decayed count sinks below ``min_impressions`` and it is explored again
after about ``log2(impressions / min_impressions)`` half-lives, which suits a grocer whose
seasons come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from scipy import special

from kirana.automation.content import Epoch, Placement
from kirana.automation.stats import Counts, FeedbackStats, StatsKey, item_arm

Status = Literal["learning", "active", "evicted", "readmitted"]


@dataclass(frozen=True)
class EvictionRule:
    threshold: float = 0.005
    confidence: float = 0.05
    min_impressions: float = 200.0
    prior_a: float = 1.0
    prior_b: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold: must be a CTR in (0, 1)")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError("confidence: must be in (0, 1)")
        if self.min_impressions < 0 or self.prior_a <= 0 or self.prior_b <= 0:
            raise ValueError("min_impressions must be >= 0 and the priors positive")

    def p_above(self, counts: Counts) -> float:
        """Posterior probability that the arm's CTR exceeds the threshold."""
        a = self.prior_a + counts.clicks
        b = self.prior_b + max(counts.impressions - counts.clicks, 0.0)
        return float(1.0 - special.betainc(a, b, self.threshold))


class Verdict(NamedTuple):
    arm: str
    status: Status
    p_above: float
    impressions: float

    @property
    def evicted(self) -> bool:
        return self.status == "evicted"


def judge(arm: str, counts: Counts, rule: EvictionRule) -> Verdict:
    """The verdict for one arm's counts (already checked to be of the current epoch)."""
    p = rule.p_above(counts)
    if counts.impressions < rule.min_impressions:
        return Verdict(arm, "learning", p, counts.impressions)
    return Verdict(arm, "evicted" if p < rule.confidence else "active", p, counts.impressions)


def _arms(placement: Placement) -> Iterator[tuple[str, Epoch]]:
    for widget in placement.widgets:
        yield widget.key, widget.epoch
        for item in widget.items:
            yield item_arm(widget.key, item.key), item.epoch


def review(
    placement: Placement,
    stats: FeedbackStats,
    segment: str,
    now: datetime | float,
    rule: EvictionRule | None = None,
) -> dict[str, Verdict]:
    """Verdicts for every widget and content item of ``placement`` in ``segment``.

    Keys are stats arm keys (``widget`` or ``widget/item``). Pure: reads the stats and the
    content, changes neither. Pinned widgets get verdicts too; the ranking ignores them,
    because a pin is an editor's decision.
    """
    rule = rule or EvictionRule()
    out: dict[str, Verdict] = {}
    for arm, epoch in _arms(placement):
        key = StatsKey(placement.key, arm, segment)
        stored = stats.epoch(key)
        if stored is not None and stored != epoch:
            out[arm] = Verdict(arm, "readmitted", 1.0, 0.0)
        else:
            out[arm] = judge(arm, stats.counts(key, now), rule)
    return out


def evicted(verdicts: dict[str, Verdict]) -> frozenset[str]:
    return frozenset(arm for arm, v in verdicts.items() if v.evicted)
