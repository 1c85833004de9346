"""The content model: placements hold widgets, widgets hold items.

Definitions come from an editor or a config file, so they are validated on construction and
every refusal is a :class:`ContentError` naming the field and the rule
(``widgets[2].pinned_slot: must be below max_widgets (3)``): a typo in a campaign should fail
when it is saved, not show nothing on the home feed. :func:`load_placement` decodes plain JSON
data with msgspec, which checks the types; ``__post_init__`` checks the rules.

Version and schedule matter beyond display: together they are an arm's :attr:`epoch`, and
feedback gathered under an older epoch no longer describes the content (see ``stats`` and
``eviction``), so an edited or re-run item is learnt afresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

#: The usual points of the buying journey; any valid key may name a placement.
JOURNEY_PLACEMENTS = ("home_feed", "product_page", "cart", "order_confirmation")
WidgetKind = Literal[
    "buy_again",
    "frequently_bought_together",
    "recommended_for_you",
    "popular",
    "banner",
    "collection",
    "offer",
]
RECOMMENDATION_KINDS = frozenset(
    {"buy_again", "frequently_bought_together", "recommended_for_you", "popular"}
)
CONTENT_KINDS = frozenset({"banner", "collection", "offer"})
POOLED_SEGMENT = "all"  # reserved: the stats' all-audience segment

Epoch = tuple[int, float]  # (version, schedule start as POSIX seconds, 0 when unscheduled)

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_AT = re.compile(r"^(?P<rule>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


class ContentError(ValueError):
    """A content definition that cannot be served; ``field`` says where, ``rule`` says why."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def _check_key(value: str, field: str) -> None:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ContentError(field, f"must be 1-128 letters, digits, '_', '.' or '-' (got {value!r})")


def _check_unique(keys: Iterable[str], field: str, suffix: str = ".key") -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise ContentError(f"{field}[{i}]{suffix}", f"duplicate {key!r}")
        seen.add(key)


def _check_audiences(audiences: Iterable[str]) -> None:
    for i, name in enumerate(audiences):
        if not isinstance(name, str) or not name.strip():
            raise ContentError(f"audiences[{i}]", "must be a non-empty audience name")
        if name == POOLED_SEGMENT:
            raise ContentError(f"audiences[{i}]", f"{POOLED_SEGMENT!r} is reserved (use [])")
    _check_unique(audiences, "audiences", suffix="")


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A display window ``[start, end)``; either end may be open. Times must carry a zone."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ContentError(name, "must include a UTC offset (e.g. 2025-01-01T00:00:00Z)")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ContentError("end", "must be after start")

    def active(self, now: datetime) -> bool:
        """Whether ``now`` falls inside the window."""
        if self.start is not None and now < self.start:
            return False
        return self.end is None or now < self.end


class FrequencyCap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most ``max_impressions`` impressions per user in any ``hours``-long window."""

    max_impressions: int
    hours: float

    def __post_init__(self) -> None:
        if self.max_impressions < 1:
            raise ContentError("max_impressions", "must be at least 1")
        if not self.hours > 0:
            raise ContentError("hours", "must be positive")


def _epoch(version: int, schedule: Schedule | None) -> Epoch:
    start = schedule.start if schedule is not None else None
    return (version, start.timestamp() if start is not None else 0.0)


class ContentItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One piece of content (a banner creative, an offer card) rendered by ``template``."""

    key: str
    title: str
    template: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    audiences: tuple[str, ...] = ()
    schedule: Schedule | None = None
    available: bool = True
    version: int = 1

    def __post_init__(self) -> None:
        _check_key(self.key, "key")
        for name in ("title", "template"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ContentError(name, "must be a non-empty string")
        _check_audiences(self.audiences)
        if self.version < 1:
            raise ContentError("version", "must be at least 1")

    @property
    def epoch(self) -> Epoch:
        """(version, schedule start): feedback from an older epoch is stale."""
        return _epoch(self.version, self.schedule)


class Widget(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A block in a placement: a recommendation strip (products come from a recommender at
    request time, so ``items`` stays empty) or a content block holding :class:`ContentItem`\\ s.
    """

    key: str
    kind: WidgetKind
    max_items: int = 10
    pinned_slot: int | None = None
    audiences: tuple[str, ...] = ()
    schedule: Schedule | None = None
    frequency_cap: FrequencyCap | None = None
    items: tuple[ContentItem, ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        _check_key(self.key, "key")
        if self.max_items < 1:
            raise ContentError("max_items", "must be at least 1")
        if self.pinned_slot is not None and self.pinned_slot < 0:
            raise ContentError("pinned_slot", "must be 0 (the top) or more")
        _check_audiences(self.audiences)
        if self.version < 1:
            raise ContentError("version", "must be at least 1")
        if self.kind in CONTENT_KINDS and not self.items:
            raise ContentError("items", f"a {self.kind} widget needs at least one item")
        if self.kind in RECOMMENDATION_KINDS and self.items:
            raise ContentError(
                "items",
                f"must be empty for a {self.kind} widget (products come from the recommender)",
            )
        _check_unique((item.key for item in self.items), "items")

    @property
    def is_recommendation(self) -> bool:
        return self.kind in RECOMMENDATION_KINDS

    @property
    def epoch(self) -> Epoch:
        return _epoch(self.version, self.schedule)


class Placement(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A point in the buying journey and its ordered candidate widgets."""

    key: str
    widgets: tuple[Widget, ...]
    max_widgets: int = 5

    def __post_init__(self) -> None:
        _check_key(self.key, "key")
        if self.max_widgets < 1:
            raise ContentError("max_widgets", "must be at least 1")
        if not self.widgets:
            raise ContentError("widgets", "needs at least one widget")
        _check_unique((w.key for w in self.widgets), "widgets")
        slots: dict[int, str] = {}
        for i, widget in enumerate(self.widgets):
            slot = widget.pinned_slot
            if slot is None:
                continue
            if slot >= self.max_widgets:
                raise ContentError(
                    f"widgets[{i}].pinned_slot", f"must be below max_widgets ({self.max_widgets})"
                )
            if slot in slots:
                raise ContentError(
                    f"widgets[{i}].pinned_slot", f"slot {slot} is already pinned by {slots[slot]!r}"
                )
            slots[slot] = widget.key

    def widget(self, key: str) -> Widget:
        for widget in self.widgets:
            if widget.key == key:
                return widget
        raise KeyError(key)


def _error_from(exc: msgspec.ValidationError) -> ContentError:
    """Re-address msgspec's error as ``path.field: rule``."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any string
    path = (match["path"] or "").lstrip(".")
    cause = exc.__cause__
    if isinstance(cause, ContentError):
        field, rule = cause.field, cause.rule
    else:
        rule = match["rule"]
        named = re.search(r"(?:missing required|unknown) field `([^`]+)`", rule)
        field = named[1] if named else ""
    if field and path:
        field = f"{path}{'' if field.startswith('[') else '.'}{field}"
    return ContentError(field or path or "$", rule)


def load_placement(data: Mapping[str, Any] | bytes | str) -> Placement:
    """A validated :class:`Placement` from JSON text or already-decoded data."""
    try:
        if isinstance(data, bytes | str):
            return msgspec.json.decode(data, type=Placement)
        return msgspec.convert(data, Placement)
    except msgspec.ValidationError as exc:
        raise _error_from(exc) from exc
    except msgspec.DecodeError as exc:
        raise ContentError("$", f"invalid JSON ({exc})") from exc


def dump_placement(placement: Placement) -> dict[str, Any]:
    """Plain JSON-able data that :func:`load_placement` reads back to an equal placement."""
    return msgspec.to_builtins(placement)
