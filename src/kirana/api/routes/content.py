"""Content management: placements, widgets, items (``/v1/content/...``).

Admin tokens write, viewer tokens read. Thin: validation and versioning live in
:class:`kirana.serving.content_store.ContentStore`; the personalise API picks changes up
within ``automation.refresh_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Body, HTTPException

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.automation.content import ContentError
from kirana.automation.eviction import EvictionRule, review
from kirana.runtime import Platform
from kirana.serving.content_store import (
    ContentConflict,
    ContentNotFound,
    ContentStore,
    content_path,
)
from kirana.serving.feedback_store import FeedbackStore, feedback_path

router = APIRouter(prefix="/v1/content", tags=["content"])
T = TypeVar("T")

_WIDGET_EXAMPLE = {
    "key": "hero",
    "kind": "banner",
    "title": "This week",
    "max_items": 1,
    "frequency_cap": {"max_impressions": 3, "hours": 24},
    "items": [
        {
            "key": "pancake-day",
            "title": "Pancake day",
            "template": "hero",
            "payload": {"image": "pancakes.jpg"},
            "tags": ["department:breakfast"],
            "schedule": {"start": "2026-02-10T00:00:00Z", "end": "2026-02-18T00:00:00Z"},
        }
    ],
}
_PLACEMENT_EXAMPLE = {
    "key": "home_feed",
    "max_widgets": 4,
    "widgets": [{"widget": "again", "pinned_slot": 0}, "hero", "for-you"],
}
_ITEM_EXAMPLE = {
    "key": "vegan-week",
    "title": "Vegan week",
    "template": "hero",
    "audiences": ["vegan"],
}


def _store(platform: Platform) -> ContentStore:
    return platform.service(
        "automation.content_store", lambda: ContentStore(content_path(platform.settings.state_dir))
    )


def _call(fn: Callable[[], T]) -> T:
    """422 invalid (naming field and rule), 404 unknown, 409 contradicts what is stored."""
    try:
        return fn()
    except ContentError as exc:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_content",
                "message": str(exc),
                "field": exc.field,
                "rule": exc.rule,
            },
        ) from exc
    except ContentNotFound as exc:
        raise HTTPException(404, detail={"code": "not_found", "message": str(exc)}) from exc
    except ContentConflict as exc:
        raise HTTPException(409, detail={"code": "conflict", "message": str(exc)}) from exc


def _out(value: Any) -> Any:
    return msgspec.to_builtins(value)


Payload = Body(..., description="The record's fields: docs/automation.md")
#: writes refused when they contradict what is stored (`_call`)
_CONFLICT = {
    409: {
        "description": "Contradicts what is stored (`conflict`): the key exists, "
        "or the record is in use"
    }
}


# -- placements -------------------------------------------------------------------------


@router.get("/placements")
def list_placements(platform: PlatformDep, _: ViewerDep) -> list[dict]:
    """Every placement (a point in the journey and its candidate widgets)."""
    return _out(_store(platform).placements())


@router.post("/placements", status_code=201, responses=_CONFLICT)
def create_placement(
    platform: PlatformDep,
    _: AdminDep,
    body: dict[str, Any] = Body(
        ..., description="`key`, `max_widgets`, `widgets`", examples=[_PLACEMENT_EXAMPLE]
    ),
) -> dict:
    """Create a placement; its widgets must exist."""
    return _out(_call(lambda: _store(platform).create_placement(body)))


@router.get("/placements/{key}")
def get_placement(key: str, platform: PlatformDep, _: ViewerDep) -> dict:
    return _out(_call(lambda: _store(platform).placement(key)))


@router.put("/placements/{key}", responses=_CONFLICT)
def update_placement(
    key: str, platform: PlatformDep, _: AdminDep, body: dict[str, Any] = Payload
) -> dict:
    """Replace a placement (its version goes up when anything changed)."""
    return _out(_call(lambda: _store(platform).update_placement(key, body)))


@router.delete("/placements/{key}", status_code=204, responses=_CONFLICT)
def delete_placement(key: str, platform: PlatformDep, _: AdminDep) -> None:
    _call(lambda: _store(platform).delete_placement(key))


@router.get("/placements/{key}/stats")
def placement_stats(key: str, platform: PlatformDep, _: ViewerDep) -> list[dict]:
    """Per arm and learning segment: decayed impressions, clicks, CTR and the eviction verdict."""
    settings = platform.settings.automation
    store = _store(platform)

    def verdicts() -> list[dict]:
        _, placements = store.snapshot()
        compiled = placements.get(key)
        if compiled is None:
            store.placement(key)  # raises the not-found error
        if compiled is None or compiled.placement is None:
            return []
        feedback = FeedbackStore(feedback_path(platform.settings.state_dir))
        try:
            stats, _ = feedback.load_stats(settings.half_life_hours * 3600)
        finally:
            feedback.close()
        rule = EvictionRule(
            threshold=settings.evict_below_ctr,
            confidence=settings.evict_confidence,
            min_impressions=settings.evict_min_impressions,
        )
        import time

        now = time.time()
        segments = sorted({k.segment for k in stats if k.placement == key}) or ["all"]
        out = []
        for segment in segments:
            for arm, v in review(compiled.placement, stats, segment, now, rule).items():
                c = stats.counts((key, arm, segment), now)  # type: ignore[arg-type]
                out.append(
                    {
                        "segment": segment,
                        "arm": arm,
                        "status": v.status,
                        "impressions": round(c.impressions, 3),
                        "clicks": round(c.clicks, 3),
                        "ctr": round(c.ctr, 5),
                        "p_above_threshold": round(v.p_above, 5),
                    }
                )
        return out

    return _call(verdicts)


# -- widgets ----------------------------------------------------------------------------


@router.get("/widgets")
def list_widgets(platform: PlatformDep, _: ViewerDep) -> list[dict]:
    return _out(_store(platform).widgets())


@router.post("/widgets", status_code=201, responses=_CONFLICT)
def create_widget(
    platform: PlatformDep,
    _: AdminDep,
    body: dict[str, Any] = Body(
        ..., description="`key`, `kind` and the widget's settings", examples=[_WIDGET_EXAMPLE]
    ),
) -> dict:
    """Create a widget; content widgets may bring their `items` inline."""
    store = _store(platform)

    def create() -> dict:
        widget = store.create_widget(body)
        return {**_out(widget), "items": _out(store.items(widget.key))}

    return _call(create)


@router.get("/widgets/{key}")
def get_widget(key: str, platform: PlatformDep, _: ViewerDep) -> dict:
    store = _store(platform)
    return _call(lambda: {**_out(store.widget(key)), "items": _out(store.items(key))})


@router.put("/widgets/{key}", responses=_CONFLICT)
def update_widget(
    key: str, platform: PlatformDep, _: AdminDep, body: dict[str, Any] = Payload
) -> dict:
    """Replace a widget's settings (items are managed under `/items`)."""
    return _out(_call(lambda: _store(platform).update_widget(key, body)))


@router.delete("/widgets/{key}", status_code=204, responses=_CONFLICT)
def delete_widget(key: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete a widget and its items (refused while a placement uses it)."""
    _call(lambda: _store(platform).delete_widget(key))


# -- items ------------------------------------------------------------------------------


@router.get("/widgets/{widget}/items")
def list_items(widget: str, platform: PlatformDep, _: ViewerDep) -> list[dict]:
    store = _store(platform)
    return _out(_call(lambda: (store.widget(widget), store.items(widget))[1]))


@router.post("/widgets/{widget}/items", status_code=201, responses=_CONFLICT)
def create_item(
    widget: str,
    platform: PlatformDep,
    _: AdminDep,
    body: dict[str, Any] = Body(
        ..., description="`key`, `title`, `template` and targeting", examples=[_ITEM_EXAMPLE]
    ),
) -> dict:
    return _out(_call(lambda: _store(platform).create_item(widget, body)))


@router.get("/widgets/{widget}/items/{key}")
def get_item(widget: str, key: str, platform: PlatformDep, _: ViewerDep) -> dict:
    return _out(_call(lambda: _store(platform).item(widget, key)))


@router.put("/widgets/{widget}/items/{key}", responses=_CONFLICT)
def update_item(
    widget: str, key: str, platform: PlatformDep, _: AdminDep, body: dict[str, Any] = Payload
) -> dict:
    """Replace an item; a changed item gets a new version and is learnt afresh (re-admitted)."""
    return _out(_call(lambda: _store(platform).update_item(widget, key, body)))


@router.delete("/widgets/{widget}/items/{key}", status_code=204, responses=_CONFLICT)
def delete_item(widget: str, key: str, platform: PlatformDep, _: AdminDep) -> None:
    _call(lambda: _store(platform).delete_item(widget, key))


# -- bulk -------------------------------------------------------------------------------


@router.post(
    "/import",
    responses={**_CONFLICT, 404: {"description": "A placement names a widget that does not exist"}},
)
def import_content(platform: PlatformDep, _: AdminDep, body: dict[str, Any] = Payload) -> dict:
    """Create or update `widgets` (with inline items) and `placements` in one transaction;
    unchanged records keep their versions and statistics."""
    return _call(lambda: _store(platform).import_bundle(body))


@router.get("/export")
def export_content(platform: PlatformDep, _: ViewerDep) -> dict:
    """Everything, in the shape `/import` reads."""
    return _store(platform).export_bundle()
