"""The content model refuses invalid definitions, naming the field and the rule."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kirana.automation import (
    ContentError,
    ContentItem,
    Schedule,
    Widget,
    dump_placement,
    load_placement,
)
from tests.automation.conftest import item, placement_data


def with_change(path: str, value: Any) -> dict[str, Any]:
    """placement_data() with one value set at a dotted path like ``widgets.0.max_items``."""
    data = copy.deepcopy(placement_data())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


def test_valid_placement_round_trips(placement) -> None:
    assert [w.key for w in placement.widgets] == ["hero", "again", "offers", "recs"]
    assert placement.widget("hero").items[0].version == 1
    assert load_placement(dump_placement(placement)) == placement
    assert load_placement(json.dumps(dump_placement(placement), default=str)) == placement


@pytest.mark.parametrize(
    ("path", "value", "field", "rule"),
    [
        ("key", "home page", "key", "letters, digits"),
        ("max_widgets", 0, "max_widgets", "at least 1"),
        ("widgets", [], "widgets", "at least one widget"),
        ("widgets.0.max_items", 0, "widgets[0].max_items", "at least 1"),
        ("widgets.0.max_items", "two", "widgets[0].max_items", "Expected `int`"),
        ("widgets.0.kind", "carousel", "widgets[0].kind", "Invalid enum value"),
        ("widgets.0.key", "has space", "widgets[0].key", "letters, digits"),
        ("widgets.0.key", "a/b", "widgets[0].key", "letters, digits"),
        ("widgets.0.items", [], "widgets[0].items", "needs at least one item"),
        ("widgets.1.items", [item("x")], "widgets[1].items", "must be empty"),
        ("widgets.1.pinned_slot", 3, "widgets[1].pinned_slot", "below max_widgets"),
        ("widgets.1.pinned_slot", -1, "widgets[1].pinned_slot", "0 (the top) or more"),
        ("widgets.2.pinned_slot", 0, "widgets[2].pinned_slot", "already pinned"),
        ("widgets.3.key", "hero", "widgets[3].key", "duplicate"),
        ("widgets.0.audiences", ["vegan", "vegan"], "widgets[0].audiences[1]", "duplicate"),
        ("widgets.0.audiences", ["all"], "widgets[0].audiences[0]", "reserved"),
        ("widgets.0.audiences", [""], "widgets[0].audiences[0]", "non-empty"),
        ("widgets.0.colour", "red", "widgets[0].colour", "unknown field"),
        (
            "widgets.0.frequency_cap",
            {"max_impressions": 0, "hours": 24},
            "widgets[0].frequency_cap.max_impressions",
            "at least 1",
        ),
        (
            "widgets.0.frequency_cap",
            {"max_impressions": 3, "hours": 0},
            "widgets[0].frequency_cap.hours",
            "positive",
        ),
        (
            "widgets.0.schedule",
            {"start": "2025-03-02T00:00:00Z", "end": "2025-03-01T00:00:00Z"},
            "widgets[0].schedule.end",
            "after start",
        ),
        (
            "widgets.0.schedule",
            {"start": "2025-03-02T00:00:00"},
            "widgets[0].schedule.start",
            "UTC offset",
        ),
        (
            "widgets.0.schedule",
            {"start": "next tuesday"},
            "widgets[0].schedule.start",
            "Invalid RFC3339",
        ),
        ("widgets.0.items.1.title", "  ", "widgets[0].items[1].title", "non-empty"),
        ("widgets.0.items.1.version", 0, "widgets[0].items[1].version", "at least 1"),
        ("widgets.0.items.1.available", "yes", "widgets[0].items[1].available", "Expected `bool`"),
        ("widgets.0.items.1.payload", [1, 2], "widgets[0].items[1].payload", "Expected `object`"),
        ("widgets.0.items.1.key", "b0", "widgets[0].items[1].key", "duplicate"),
        (
            "widgets.2.items.0",
            {"key": "o1", "title": "x"},
            "widgets[2].items[0].template",
            "missing required",
        ),
    ],
)
def test_invalid_definitions_name_the_field(path: str, value: Any, field: str, rule: str) -> None:
    with pytest.raises(ContentError) as info:
        load_placement(with_change(path, value))
    assert info.value.field == field
    assert rule in info.value.rule
    assert str(info.value).startswith(f"{field}: ")


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ContentError, match=r"^max_items: must be at least 1"):
        Widget(key="w", kind="popular", max_items=0)
    with pytest.raises(ContentError, match=r"^version"):
        ContentItem(key="i", title="t", template="t", version=-2)


def test_malformed_json_is_refused() -> None:
    with pytest.raises(ContentError, match=r"^\$: invalid JSON"):
        load_placement(b"{nope")


def test_epoch_follows_version_and_schedule_start() -> None:
    plain = ContentItem(key="i", title="t", template="t")
    edited = ContentItem(key="i", title="t2", template="t", version=2)
    rerun = (
        load_placement(
            with_change("widgets.0.items.0.schedule", {"start": "2025-04-01T00:00:00+01:00"})
        )
        .widget("hero")
        .items[0]
    )
    assert plain.epoch == (1, 0.0)
    assert edited.epoch > plain.epoch
    assert rerun.epoch == (1, rerun.schedule.start.timestamp())
    assert Schedule().active(rerun.schedule.start)
