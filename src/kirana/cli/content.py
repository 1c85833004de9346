"""``kirana content …``: placements, widgets and items, straight on the content store.

A running ``kirana serve`` picks changes up within ``automation.refresh_seconds``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kirana.cli.options import DataDir, fail

T = TypeVar("T")

content_app = typer.Typer(
    help="Content for the personalise API: placements, widgets, items.", no_args_is_help=True
)
placements_app = typer.Typer(
    help="Placements: points in the journey and their widgets.", no_args_is_help=True
)
widgets_app = typer.Typer(
    help="Widgets: recommendation strips, banners, collections, offers.", no_args_is_help=True
)
items_app = typer.Typer(help="Items of banner, collection and offer widgets.", no_args_is_help=True)
content_app.add_typer(placements_app, name="placements")
content_app.add_typer(widgets_app, name="widgets")
content_app.add_typer(items_app, name="items")

File = Annotated[Path, typer.Option("--file", "-f", help="JSON body ('-' for standard input).")]
Key = Annotated[str, typer.Argument(help="The record's key.")]
WidgetKey = Annotated[str, typer.Argument(help="The widget's key.")]


def _read(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{path}: not valid JSON ({exc})") from exc


def _run(data_dir: Path | None, action: Callable[[Any], T]) -> None:
    """Open the store, run ``action``, print its result as JSON, turn errors into messages."""
    import msgspec

    from kirana.automation.content import ContentError
    from kirana.config import load_settings
    from kirana.serving.content_store import (
        ContentConflict,
        ContentNotFound,
        ContentStore,
        content_path,
    )

    store = ContentStore(content_path(load_settings(data_dir).state_dir))
    try:
        result = action(store)
    except ContentError as exc:
        raise fail(f"invalid content: {exc}") from exc
    except (ContentNotFound, ContentConflict) as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    if result is not None:
        typer.echo(json.dumps(msgspec.to_builtins(result), indent=2, default=str))


# -- placements -------------------------------------------------------------------------


@placements_app.command("list")
def placements_list(data_dir: DataDir = None) -> None:
    """Every placement as JSON."""
    _run(data_dir, lambda s: s.placements())


@placements_app.command("show")
def placements_show(key: Key, data_dir: DataDir = None) -> None:
    """One placement."""
    _run(data_dir, lambda s: s.placement(key))


@placements_app.command("create")
def placements_create(file: File, data_dir: DataDir = None) -> None:
    """Create a placement, e.g. {"key": "home_feed", "widgets": ["hero", "for-you"]}."""
    body = _read(file)
    _run(data_dir, lambda s: s.create_placement(body))


@placements_app.command("update")
def placements_update(key: Key, file: File, data_dir: DataDir = None) -> None:
    """Replace a placement."""
    body = _read(file)
    _run(data_dir, lambda s: s.update_placement(key, body))


@placements_app.command("delete")
def placements_delete(key: Key, data_dir: DataDir = None) -> None:
    """Delete a placement (its widgets stay)."""
    _run(data_dir, lambda s: s.delete_placement(key))


@placements_app.command("stats")
def placements_stats(key: Key, data_dir: DataDir = None) -> None:
    """Impressions, clicks, CTR and eviction verdict of every arm, per learning segment."""
    import time

    from kirana.automation.eviction import EvictionRule, review
    from kirana.config import load_settings
    from kirana.serving.feedback_store import FeedbackStore, feedback_path

    settings = load_settings(data_dir)
    auto = settings.automation

    def rows(store: Any) -> list[dict]:
        store.placement(key)
        compiled = store.snapshot()[1][key]
        if compiled.placement is None:
            return []
        feedback = FeedbackStore(feedback_path(settings.state_dir))
        try:
            stats, _ = feedback.load_stats(auto.half_life_hours * 3600)
        finally:
            feedback.close()
        rule = EvictionRule(auto.evict_below_ctr, auto.evict_confidence, auto.evict_min_impressions)
        now = time.time()
        segments = sorted({k.segment for k in stats if k.placement == key}) or ["all"]
        out = []
        for segment in segments:
            for arm, v in review(compiled.placement, stats, segment, now, rule).items():
                c = stats.counts((key, arm, segment), now)
                out.append(
                    {"segment": segment, "arm": arm, "status": v.status}
                    | {"impressions": round(c.impressions, 2), "clicks": round(c.clicks, 2)}
                )
        return out

    _run(data_dir, rows)


# -- widgets ----------------------------------------------------------------------------


@widgets_app.command("list")
def widgets_list(data_dir: DataDir = None) -> None:
    """Every widget as JSON."""
    _run(data_dir, lambda s: s.widgets())


@widgets_app.command("show")
def widgets_show(key: Key, data_dir: DataDir = None) -> None:
    """One widget with its items."""
    import msgspec

    _run(
        data_dir,
        lambda s: {**msgspec.to_builtins(s.widget(key)), "items": s.items(key)},
    )


@widgets_app.command("create")
def widgets_create(file: File, data_dir: DataDir = None) -> None:
    """Create a widget (content widgets may bring their "items" inline)."""
    body = _read(file)
    _run(data_dir, lambda s: s.create_widget(body))


@widgets_app.command("update")
def widgets_update(key: Key, file: File, data_dir: DataDir = None) -> None:
    """Replace a widget's settings."""
    body = _read(file)
    _run(data_dir, lambda s: s.update_widget(key, body))


@widgets_app.command("delete")
def widgets_delete(key: Key, data_dir: DataDir = None) -> None:
    """Delete a widget and its items (refused while a placement uses it)."""
    _run(data_dir, lambda s: s.delete_widget(key))


# -- items ------------------------------------------------------------------------------


@items_app.command("list")
def items_list(widget: WidgetKey, data_dir: DataDir = None) -> None:
    """A widget's items."""
    _run(data_dir, lambda s: (s.widget(widget), s.items(widget))[1])


@items_app.command("show")
def items_show(widget: WidgetKey, key: Key, data_dir: DataDir = None) -> None:
    """One item."""
    _run(data_dir, lambda s: s.item(widget, key))


@items_app.command("create")
def items_create(widget: WidgetKey, file: File, data_dir: DataDir = None) -> None:
    """Add an item to a banner, collection or offer widget."""
    body = _read(file)
    _run(data_dir, lambda s: s.create_item(widget, body))


@items_app.command("update")
def items_update(widget: WidgetKey, key: Key, file: File, data_dir: DataDir = None) -> None:
    """Replace an item (a changed item is learnt afresh: re-admitted if evicted)."""
    body = _read(file)
    _run(data_dir, lambda s: s.update_item(widget, key, body))


@items_app.command("delete")
def items_delete(widget: WidgetKey, key: Key, data_dir: DataDir = None) -> None:
    """Delete an item."""
    _run(data_dir, lambda s: s.delete_item(widget, key))


# -- bulk -------------------------------------------------------------------------------


@content_app.command("import")
def content_import(
    file: Annotated[Path, typer.Argument(help="JSON with `widgets` and/or `placements`.")],
    data_dir: DataDir = None,
) -> None:
    """Create or update everything in a file, in one transaction (unchanged records keep
    their versions and statistics)."""
    body = _read(file)
    _run(data_dir, lambda s: s.import_bundle(body))


@content_app.command("export")
def content_export(data_dir: DataDir = None) -> None:
    """Everything, in the shape `import` reads."""
    _run(data_dir, lambda s: s.export_bundle())
