"""The content store validates, versions and compiles what editors save."""

from __future__ import annotations

from pathlib import Path

import pytest

from kirana.automation.content import ContentError
from kirana.serving.content_store import ContentConflict, ContentNotFound, ContentStore


def banner(key: str = "hero", *items: str, **extra) -> dict:
    return {
        "key": key,
        "kind": "banner",
        "items": [{"key": i, "title": i.title(), "template": "hero"} for i in items],
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    s = ContentStore(tmp_path / "content.sqlite")
    s.create_widget(banner("hero", "b1", "b2"))
    s.create_widget({"key": "for-you", "kind": "recommended_for_you", "max_items": 4})
    s.create_placement(
        {"key": "home_feed", "widgets": [{"widget": "for-you", "pinned_slot": 0}, "hero"]}
    )
    return s


def test_round_trip_and_compile(store: ContentStore) -> None:
    assert [w.key for w in store.widgets()] == ["for-you", "hero"]
    assert [i.key for i in store.items("hero")] == ["b1", "b2"]
    revision, placements = store.snapshot()
    compiled = placements["home_feed"]
    assert revision == store.revision() > 0
    assert [w.key for w in compiled.placement.widgets] == ["for-you", "hero"]
    assert compiled.placement.widget("for-you").pinned_slot == 0
    assert [i.key for i in compiled.placement.widget("hero").items] == ["b1", "b2"]


def test_version_bumps_only_when_something_changed(store: ContentStore) -> None:
    item = store.item("hero", "b1")
    assert item.version == 1
    same = store.update_item("hero", "b1", {"title": "B1", "template": "hero"})
    assert same.version == 1  # identical: statistics survive
    changed = store.update_item("hero", "b1", {"title": "New B1", "template": "hero"})
    assert changed.version == 2
    body = {"key": "home_feed", "widgets": ["hero"], "max_widgets": 2}
    assert store.update_placement("home_feed", body).version == 2


@pytest.mark.parametrize(
    ("call", "field", "rule"),
    [
        (lambda s: s.create_widget({"key": "x", "kind": "carousel"}), "kind", "Invalid enum"),
        (lambda s: s.create_widget({"key": "a b", "kind": "banner"}), "key", "letters, digits"),
        (lambda s: s.create_widget(banner("x", "ok", max_items=0)), "max_items", "at least 1"),
        (
            lambda s: s.create_widget(banner("x", "ok", colour="red")),
            "colour",
            "unknown field",
        ),
        (
            lambda s: s.create_widget({**banner("x"), "items": [{"key": "i", "title": ""}]}),
            "items[0].template",
            "missing required",
        ),
        (
            lambda s: s.create_widget({**banner("p", "i"), "kind": "popular"}),
            "items",
            "takes its products from the recommender",
        ),
        (
            lambda s: s.create_item("for-you", {"key": "i", "title": "I", "template": "t"}),
            "widget",
            "takes its products from the recommender",
        ),
        (
            lambda s: s.create_placement({"key": "cart", "widgets": ["nope"]}),
            "widgets[0].widget",
            "no widget 'nope'",
        ),
        (
            lambda s: s.create_placement(
                {"key": "cart", "max_widgets": 2, "widgets": [{"widget": "hero", "pinned_slot": 2}]}
            ),
            "widgets[0].pinned_slot",
            "below max_widgets",
        ),
        (
            lambda s: s.create_placement({"key": "cart", "widgets": ["hero", "hero"]}),
            "widgets[1].widget",
            "duplicate",
        ),
        (
            lambda s: s.update_item("hero", "b1", {"key": "b9", "title": "T", "template": "t"}),
            "key",
            "path names 'b1'",
        ),
        (
            lambda s: s.create_item(
                "hero",
                {
                    "key": "late",
                    "title": "T",
                    "template": "t",
                    "schedule": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                },
            ),
            "schedule.end",
            "after start",
        ),
    ],
)
def test_invalid_content_names_the_field_and_writes_nothing(
    store: ContentStore, call, field: str, rule: str
) -> None:
    before = store.revision()
    with pytest.raises(ContentError) as info:
        call(store)
    assert info.value.field == field
    assert rule in info.value.rule
    assert store.revision() == before


def test_conflicts_and_missing_records(store: ContentStore) -> None:
    with pytest.raises(ContentConflict, match="used by placement"):
        store.delete_widget("hero")
    with pytest.raises(ContentConflict, match="exists"):
        store.create_widget(banner("hero", "b3"))
    with pytest.raises(ContentNotFound, match="kirana content widgets list"):
        store.widget("nope")
    with pytest.raises(ContentNotFound, match="no item 'zz'"):
        store.item("hero", "zz")
    store.delete_placement("home_feed")
    store.delete_widget("hero")
    assert [w.key for w in store.widgets()] == ["for-you"]
    assert store.items("hero") == []


def test_compile_leaves_out_what_cannot_be_shown(store: ContentStore) -> None:
    store.delete_item("hero", "b1")
    store.delete_item("hero", "b2")
    compiled = store.snapshot()[1]["home_feed"]
    assert [w.key for w in compiled.placement.widgets] == ["for-you"]  # empty banner drops out
    store.update_widget("for-you", {"kind": "recommended_for_you", "available": False})
    assert store.snapshot()[1]["home_feed"].placement is None  # nothing left to show


def test_import_is_one_transaction_and_idempotent(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "c.sqlite")
    bundle = {
        "widgets": [banner("hero", "b1"), {"key": "pop", "kind": "popular"}],
        "placements": [{"key": "home_feed", "widgets": ["hero", "pop"]}],
    }
    assert store.import_bundle(bundle) == {"created": 4, "updated": 0, "unchanged": 0}
    assert store.import_bundle(bundle) == {"created": 0, "updated": 0, "unchanged": 4}
    assert store.import_bundle(store.export_bundle())["unchanged"] == 4
    broken = {**bundle, "placements": [{"key": "cart", "widgets": ["missing"]}]}
    revision = store.revision()
    with pytest.raises(ContentError, match=r"placements\[0\].widgets\[0\].widget"):
        store.import_bundle(broken)
    assert store.revision() == revision
    assert [p.key for p in store.placements()] == ["home_feed"]
