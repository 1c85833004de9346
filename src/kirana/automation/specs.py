"""What editors store: placements, widgets and items as separate, editable records.

The ranking core works on one nested, immutable :class:`~kirana.automation.content.Placement`.
Editors work differently: a banner widget is made once and used on several placements, its
items come and go, a pin belongs to where the widget sits, not to the widget. So the stored
shape is three kinds of record, each validated on its own when saved (:func:`load_spec`
refuses with a :class:`~kirana.automation.content.ContentError` naming the field and the
rule), and :func:`compile_placement` assembles the core's placement from them at read time.

Compiling is forgiving where saving is strict: a content widget whose last item was deleted,
or one switched off with ``available: false``, simply drops out of the placement rather than
making it unservable. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from kirana.automation.affinity import normalise_tag
from kirana.automation.content import (
    RECOMMENDATION_KINDS,
    ContentError,
    ContentItem,
    FrequencyCap,
    Placement,
    Schedule,
    Widget,
    WidgetKind,
    _check_audiences,
    _check_key,
    _check_unique,
    _error_from,
)

S = TypeVar("S")


def _check_tags(tags: Sequence[str]) -> None:
    for i, value in enumerate(tags):
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise ContentError(f"tags[{i}]", "must be a non-empty tag of at most 200 characters")


class ItemSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A content item (banner creative, offer card, collection entry) inside a widget.

    ``version`` is kept by the store: every saved change bumps it, which re-admits an evicted
    item and restarts its statistics (the content is new).
    """

    key: str
    title: str
    template: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    audiences: tuple[str, ...] = ()
    schedule: Schedule | None = None
    available: bool = True
    tags: tuple[str, ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        self.content_item()  # the core's rules: key, non-empty title and template, audiences
        _check_tags(self.tags)

    def content_item(self) -> ContentItem:
        return ContentItem(
            key=self.key,
            title=self.title,
            template=self.template,
            payload=self.payload,
            audiences=self.audiences,
            schedule=self.schedule,
            available=self.available,
            version=self.version,
        )


class WidgetSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A widget. Recommendation kinds read their products from the serving store's list
    named ``source`` (default: the kind); content kinds hold items, saved separately."""

    key: str
    kind: WidgetKind
    title: str = ""
    template: str | None = None
    source: str | None = None
    max_items: int = 10
    audiences: tuple[str, ...] = ()
    schedule: Schedule | None = None
    frequency_cap: FrequencyCap | None = None
    available: bool = True
    tags: tuple[str, ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        _check_key(self.key, "key")
        if self.max_items < 1:
            raise ContentError("max_items", "must be at least 1")
        _check_audiences(self.audiences)
        _check_tags(self.tags)
        if self.source is not None:
            if self.kind not in RECOMMENDATION_KINDS:
                raise ContentError(
                    "source", f"only recommendation widgets read a source (this is a {self.kind})"
                )
            _check_key(self.source, "source")
        if self.version < 1:
            raise ContentError("version", "must be at least 1")

    @property
    def is_recommendation(self) -> bool:
        return self.kind in RECOMMENDATION_KINDS

    @property
    def serving_name(self) -> str:
        """The serving store's widget name this widget's products come from."""
        return self.source or self.kind


class Slot(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A widget's place in a placement; ``pinned_slot`` fixes its position (0 is the top)."""

    widget: str
    pinned_slot: int | None = None


class PlacementSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A point in the journey and its candidate widgets, by key (or ``{widget, pinned_slot}``)."""

    key: str
    widgets: tuple[str | Slot, ...]
    title: str = ""
    max_widgets: int = 5
    version: int = 1

    def __post_init__(self) -> None:
        _check_key(self.key, "key")
        if self.max_widgets < 1:
            raise ContentError("max_widgets", "must be at least 1")
        if not self.widgets:
            raise ContentError("widgets", "needs at least one widget")
        slots = self.slots
        for i, slot in enumerate(slots):
            _check_key(slot.widget, f"widgets[{i}].widget")
        _check_unique((s.widget for s in slots), "widgets", suffix=".widget")
        pinned: dict[int, str] = {}
        for i, slot in enumerate(slots):
            if slot.pinned_slot is None:
                continue
            where = f"widgets[{i}].pinned_slot"
            if slot.pinned_slot < 0:
                raise ContentError(where, "must be 0 (the top) or more")
            if slot.pinned_slot >= self.max_widgets:
                raise ContentError(where, f"must be below max_widgets ({self.max_widgets})")
            if slot.pinned_slot in pinned:
                raise ContentError(
                    where,
                    f"slot {slot.pinned_slot} is already pinned by {pinned[slot.pinned_slot]!r}",
                )
            pinned[slot.pinned_slot] = slot.widget

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(Slot(widget=w) if isinstance(w, str) else w for w in self.widgets)


def load_spec(data: Mapping[str, Any] | bytes | str, kind: type[S]) -> S:
    """A validated spec from JSON text or decoded data; :class:`ContentError` otherwise."""
    try:
        if isinstance(data, bytes | str):
            return msgspec.json.decode(data, type=kind)
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise _error_from(exc) from exc
    except msgspec.DecodeError as exc:
        raise ContentError("$", f"invalid JSON ({exc})") from exc


def dump_spec(spec: object) -> dict[str, Any]:
    return msgspec.to_builtins(spec)


@dataclass(frozen=True)
class CompiledPlacement:
    """The core's placement plus what serving needs beside it.

    ``placement`` is None when nothing in it can be shown (every widget unavailable or
    empty). ``tags`` maps widget keys and item keys to their normalised tags (affinities).
    """

    spec: PlacementSpec
    placement: Placement | None
    widgets: Mapping[str, WidgetSpec] = field(default_factory=dict)
    items: Mapping[tuple[str, str], ItemSpec] = field(default_factory=dict)
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def capped_widgets(self) -> tuple[str, ...]:
        return tuple(k for k, w in self.widgets.items() if w.frequency_cap is not None)


def compile_placement(
    spec: PlacementSpec,
    widgets: Mapping[str, WidgetSpec],
    items: Mapping[str, Sequence[ItemSpec]],
) -> CompiledPlacement:
    """Assemble the servable placement; widgets that are missing, switched off or (content
    kinds) without items are left out."""
    core: list[Widget] = []
    used: dict[str, WidgetSpec] = {}
    used_items: dict[tuple[str, str], ItemSpec] = {}
    tags: dict[str, tuple[str, ...]] = {}
    for slot in spec.slots:
        w = widgets.get(slot.widget)
        if w is None or not w.available:
            continue
        own = () if w.is_recommendation else tuple(items.get(w.key, ()))
        if not w.is_recommendation and not own:
            continue
        core.append(
            Widget(
                key=w.key,
                kind=w.kind,
                max_items=w.max_items,
                pinned_slot=slot.pinned_slot,
                audiences=w.audiences,
                schedule=w.schedule,
                frequency_cap=w.frequency_cap,
                items=tuple(i.content_item() for i in own),
                version=w.version,
            )
        )
        used[w.key] = w
        if w.tags:
            tags[w.key] = tuple(normalise_tag(t) for t in w.tags)
        for i in own:
            used_items[(w.key, i.key)] = i
            if i.tags:
                tags[i.key] = tuple(normalise_tag(t) for t in i.tags)
    placement = (
        Placement(key=spec.key, widgets=tuple(core), max_widgets=spec.max_widgets) if core else None
    )
    return CompiledPlacement(spec, placement, used, used_items, tags)
