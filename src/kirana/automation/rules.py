"""Business rules applied around the ranking.

The bandit only orders what it is given, so everything that is *not* a matter of learning is
decided here, before and after it ranks: availability, schedules and audience targeting decide
what may be shown at all; frequency caps (from the user's own impression history) keep a
widget from nagging; pinned slots and ``max_widgets`` / ``max_items`` shape the final list.
Keeping these deterministic and separate means an editor's rule can never be "learnt away"
and the logged propensities only describe the random part of a decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kirana.automation.content import POOLED_SEGMENT, ContentItem, Placement, Schedule, Widget


@dataclass(frozen=True)
class UserContext:
    """What the ranking knows about the user at request time (assembled elsewhere).

    ``segment`` is the audience whose CTRs are learnt and used for this user (the profile
    service picks the primary one); ``None`` uses the pooled ``"all"`` statistics.
    ``affinities`` maps a widget or item key to a preference in [0, 1] (e.g. from department
    and aisle affinities). ``recommendations`` maps a recommendation widget's key to the
    products a recommender chose for this user, best first. ``impressions`` maps a widget key
    to the times this user was shown it, for frequency caps.
    """

    user_id: str
    audiences: frozenset[str] = frozenset()
    segment: str | None = None
    affinities: Mapping[str, float] = field(default_factory=dict)
    recommendations: Mapping[str, Sequence[str]] = field(default_factory=dict)
    impressions: Mapping[str, Sequence[datetime]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "audiences", frozenset(self.audiences))
        if self.segment not in (None, POOLED_SEGMENT, *self.audiences):
            raise ValueError(f"segment: {self.segment!r} is not one of the user's audiences")
        for key, value in self.affinities.items():
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"affinities[{key!r}]: must be a number in [0, 1] (got {value!r})")

    @property
    def stats_segment(self) -> str:
        return self.segment or POOLED_SEGMENT


@dataclass(frozen=True)
class Candidate:
    """A widget that may be shown, with the items it may show (in candidate order)."""

    widget: Widget
    items: tuple[ContentItem, ...] = ()
    products: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.items) if self.items else self.products


def targeted(audiences: Sequence[str], user: UserContext) -> bool:
    """Empty targeting means everyone; otherwise the user must be in one of the audiences."""
    return not audiences or not user.audiences.isdisjoint(audiences)


def scheduled(schedule: Schedule | None, now: datetime) -> bool:
    return schedule is None or schedule.active(now)


def capped(widget: Widget, user: UserContext, now: datetime) -> bool:
    """True when the user has had ``max_impressions`` of the widget in the last ``hours``."""
    cap = widget.frequency_cap
    if cap is None:
        return False
    since = now - timedelta(hours=cap.hours)
    recent = sum(1 for t in user.impressions.get(widget.key, ()) if since < t <= now)
    return recent >= cap.max_impressions


def eligible_items(widget: Widget, user: UserContext, now: datetime) -> tuple[ContentItem, ...]:
    """The widget's content items that are available, in their window and aimed at the user."""
    return tuple(
        item
        for item in widget.items
        if item.available and scheduled(item.schedule, now) and targeted(item.audiences, user)
    )


def candidates(placement: Placement, user: UserContext, now: datetime) -> list[Candidate]:
    """Widgets allowed for this user now, each with something to show; empty ones drop out."""
    out: list[Candidate] = []
    for widget in placement.widgets:
        if not (scheduled(widget.schedule, now) and targeted(widget.audiences, user)):
            continue
        if capped(widget, user, now):
            continue
        if widget.is_recommendation:
            products = tuple(dict.fromkeys(user.recommendations.get(widget.key, ())))
            if products:
                out.append(Candidate(widget, products=products))
        else:
            items = eligible_items(widget, user, now)
            if items:
                out.append(Candidate(widget, items=items))
    return out


def place_pinned(
    ranked: Sequence[str], pinned: Mapping[str, int], limit: int | float = math.inf
) -> list[str]:
    """Merge pinned keys into a ranked list, truncated to ``limit``.

    A pinned key sits exactly at its slot whenever enough other keys exist to fill the slots
    before it; otherwise the list closes up (a slot-3 banner with only one widget above it
    shows second rather than leaving a hole). Both the ranked order and the order of the pins
    are preserved.
    """
    at = {slot: key for key, slot in pinned.items()}
    pins = sorted(pinned, key=pinned.__getitem__)
    free = [k for k in ranked if k not in pinned]
    total = int(min(limit, len(free) + len(pins)))
    out: list[str] = []
    placed: set[str] = set()
    fi = 0
    for position in range(total):
        key = at.get(position)
        if key is None or key in placed:
            if fi < len(free):
                key = free[fi]
                fi += 1
            else:
                key = next(k for k in pins if k not in placed)
        placed.add(key)
        out.append(key)
    return out
