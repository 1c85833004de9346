"""The content store: placements, widgets and items in SQLite (WAL), with a revision counter.

Editors write through the API or ``kirana content``; the personalise API and the feedback
consumer read. Every write bumps one ``revision`` number in the same transaction, so a reader
in any process can poll one integer and reload only when something changed.

Versions are the store's business: a saved change bumps the record's ``version`` (which
re-admits evicted content and restarts its statistics, see ``automation.eviction``), while
saving an identical record (re-importing the same file) changes nothing, so statistics
survive a redeploy of unchanged content.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from kirana.automation.content import ContentError
from kirana.automation.specs import (
    CompiledPlacement,
    ItemSpec,
    PlacementSpec,
    WidgetSpec,
    compile_placement,
    load_spec,
)

S = TypeVar("S", ItemSpec, WidgetSpec, PlacementSpec)

SCHEMA = """
CREATE TABLE IF NOT EXISTS placements (key TEXT PRIMARY KEY, spec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS widgets (key TEXT PRIMARY KEY, spec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    widget TEXT NOT NULL, key TEXT NOT NULL, position INTEGER NOT NULL, spec BLOB NOT NULL,
    PRIMARY KEY (widget, key));
CREATE TABLE IF NOT EXISTS content_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO content_meta VALUES ('revision', 0);
"""


class ContentNotFound(LookupError):
    """No record with that key; the message says how to list what exists."""


class ContentConflict(Exception):
    """The write would contradict what is stored (exists already, still in use)."""


def content_path(state_dir: Path) -> Path:
    return state_dir / "content.sqlite"


def _with_key(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The body with ``key`` from the path; a different key in the body is an error."""
    if not isinstance(data, Mapping):
        raise ContentError("$", "must be a JSON object")
    if "key" in data and data["key"] != key:
        raise ContentError("key", f"is {data['key']!r} but the path names {key!r}")
    return {**data, "key": key}


def split_widget(data: Mapping[str, Any]) -> tuple[WidgetSpec, list[ItemSpec]]:
    """A widget body that may carry its ``items`` inline (create and import do)."""
    if not isinstance(data, Mapping):
        raise ContentError("$", "must be a JSON object")
    body = dict(data)
    raw_items = body.pop("items", [])
    if not isinstance(raw_items, list):
        raise ContentError("items", "must be a list of items")
    widget = load_spec(body, WidgetSpec)
    items = []
    for i, raw in enumerate(raw_items):
        try:
            items.append(load_spec(raw, ItemSpec))
        except ContentError as exc:
            raise ContentError(f"items[{i}].{exc.field}".rstrip("."), exc.rule) from exc
    return widget, items


class ContentStore:
    """CRUD over the three record kinds; validation on the way in."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    # -- plumbing ------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(
                    "UPDATE content_meta SET value = value + 1 WHERE name = 'revision'"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _one(self, sql: str, args: tuple) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def revision(self) -> int:
        """Bumped by every write; poll it to know when to reload."""
        return int(self._one("SELECT value FROM content_meta WHERE name = 'revision'", ())[0])

    @staticmethod
    def _decode(blob: bytes, kind: type[S]) -> S:
        return msgspec.json.decode(blob, type=kind)

    @staticmethod
    def _bump(new: S, old: S | None) -> S:
        """``new`` with the store's version: 1, the old one (unchanged) or old + 1."""
        if old is None:
            return msgspec.structs.replace(new, version=1)
        if msgspec.structs.replace(new, version=old.version) == old:
            return old
        return msgspec.structs.replace(new, version=old.version + 1)

    # -- widgets -------------------------------------------------------------------

    def widget(self, key: str) -> WidgetSpec:
        row = self._one("SELECT spec FROM widgets WHERE key = ?", (key,))
        if row is None:
            raise ContentNotFound(
                f"no widget {key!r}; list them with GET /v1/content/widgets "
                "or `kirana content widgets list`"
            )
        return self._decode(row[0], WidgetSpec)

    def widgets(self) -> list[WidgetSpec]:
        with self._lock:
            rows = self._db.execute("SELECT spec FROM widgets ORDER BY key").fetchall()
        return [self._decode(r[0], WidgetSpec) for r in rows]

    def create_widget(self, data: Mapping[str, Any]) -> WidgetSpec:
        """A new widget, with any inline ``items``."""
        widget, items = split_widget(data)
        if items and widget.is_recommendation:
            raise ContentError("items", _NO_ITEMS.format(kind=widget.kind))
        with self._write() as db:
            if db.execute("SELECT 1 FROM widgets WHERE key = ?", (widget.key,)).fetchone():
                raise ContentConflict(
                    f"widget {widget.key!r} exists; change it with PUT "
                    f"/v1/content/widgets/{widget.key} or `kirana content widgets update`"
                )
            saved = self._put_widget(db, widget, None)
            for item in items:
                self._put_item(db, saved, item, None)
        return saved

    def update_widget(self, key: str, data: Mapping[str, Any]) -> WidgetSpec:
        """Replace a widget's settings (its items stay; manage them on their own)."""
        new = load_spec(_with_key(data, key), WidgetSpec)
        with self._write() as db:
            old = self.widget(key)
            if new.kind != old.kind and self.items(key):
                raise ContentConflict(
                    f"widget {key!r} holds items; delete them before changing its kind"
                )
            return self._put_widget(db, new, old)

    def _put_widget(self, db: sqlite3.Connection, new: WidgetSpec, old: WidgetSpec | None):
        saved = self._bump(new, old)
        db.execute(
            "INSERT OR REPLACE INTO widgets VALUES (?, ?)", (saved.key, msgspec.json.encode(saved))
        )
        return saved

    def delete_widget(self, key: str) -> None:
        with self._write() as db:
            self.widget(key)
            users = [p.key for p in self.placements() if key in {s.widget for s in p.slots}]
            if users:
                raise ContentConflict(
                    f"widget {key!r} is used by placement(s) {', '.join(users)}; "
                    "remove it from them first"
                )
            db.execute("DELETE FROM items WHERE widget = ?", (key,))
            db.execute("DELETE FROM widgets WHERE key = ?", (key,))

    # -- items ---------------------------------------------------------------------

    def items(self, widget: str) -> list[ItemSpec]:
        with self._lock:
            rows = self._db.execute(
                "SELECT spec FROM items WHERE widget = ? ORDER BY position, key", (widget,)
            ).fetchall()
        return [self._decode(r[0], ItemSpec) for r in rows]

    def item(self, widget: str, key: str) -> ItemSpec:
        row = self._one("SELECT spec FROM items WHERE widget = ? AND key = ?", (widget, key))
        if row is None:
            self.widget(widget)
            raise ContentNotFound(
                f"widget {widget!r} has no item {key!r}; list them with "
                f"GET /v1/content/widgets/{widget}/items"
            )
        return self._decode(row[0], ItemSpec)

    def create_item(self, widget: str, data: Mapping[str, Any]) -> ItemSpec:
        item = load_spec(data, ItemSpec)
        with self._write() as db:
            owner = self.widget(widget)
            if db.execute(
                "SELECT 1 FROM items WHERE widget = ? AND key = ?", (widget, item.key)
            ).fetchone():
                raise ContentConflict(
                    f"widget {widget!r} already has an item {item.key!r}; change it with PUT"
                )
            return self._put_item(db, owner, item, None)

    def update_item(self, widget: str, key: str, data: Mapping[str, Any]) -> ItemSpec:
        new = load_spec(_with_key(data, key), ItemSpec)
        with self._write() as db:
            owner = self.widget(widget)
            return self._put_item(db, owner, new, self.item(widget, key))

    def _put_item(
        self, db: sqlite3.Connection, owner: WidgetSpec, new: ItemSpec, old: ItemSpec | None
    ) -> ItemSpec:
        if owner.is_recommendation:
            raise ContentError("widget", _NO_ITEMS.format(kind=owner.kind))
        saved = self._bump(new, old)
        row = db.execute(
            "SELECT position FROM items WHERE widget = ? AND key = ?", (owner.key, saved.key)
        ).fetchone()
        if row is None:
            row = db.execute(
                "SELECT coalesce(max(position) + 1, 0) FROM items WHERE widget = ?", (owner.key,)
            ).fetchone()
        db.execute(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
            (owner.key, saved.key, row[0], msgspec.json.encode(saved)),
        )
        return saved

    def delete_item(self, widget: str, key: str) -> None:
        with self._write() as db:
            self.item(widget, key)
            db.execute("DELETE FROM items WHERE widget = ? AND key = ?", (widget, key))

    # -- placements ----------------------------------------------------------------

    def placement(self, key: str) -> PlacementSpec:
        row = self._one("SELECT spec FROM placements WHERE key = ?", (key,))
        if row is None:
            raise ContentNotFound(
                f"no placement {key!r}; list them with GET /v1/content/placements "
                "or `kirana content placements list`"
            )
        return self._decode(row[0], PlacementSpec)

    def placements(self) -> list[PlacementSpec]:
        with self._lock:
            rows = self._db.execute("SELECT spec FROM placements ORDER BY key").fetchall()
        return [self._decode(r[0], PlacementSpec) for r in rows]

    def _check_refs(self, db: sqlite3.Connection, spec: PlacementSpec) -> None:
        for i, slot in enumerate(spec.slots):
            if not db.execute("SELECT 1 FROM widgets WHERE key = ?", (slot.widget,)).fetchone():
                raise ContentError(
                    f"widgets[{i}].widget",
                    f"no widget {slot.widget!r}; create it first (POST /v1/content/widgets)",
                )

    def create_placement(self, data: Mapping[str, Any]) -> PlacementSpec:
        spec = load_spec(data, PlacementSpec)
        with self._write() as db:
            if db.execute("SELECT 1 FROM placements WHERE key = ?", (spec.key,)).fetchone():
                raise ContentConflict(
                    f"placement {spec.key!r} exists; change it with PUT "
                    f"/v1/content/placements/{spec.key} or `kirana content placements update`"
                )
            return self._put_placement(db, spec, None)

    def update_placement(self, key: str, data: Mapping[str, Any]) -> PlacementSpec:
        spec = load_spec(_with_key(data, key), PlacementSpec)
        with self._write() as db:
            return self._put_placement(db, spec, self.placement(key))

    def _put_placement(
        self, db: sqlite3.Connection, new: PlacementSpec, old: PlacementSpec | None
    ) -> PlacementSpec:
        self._check_refs(db, new)
        saved = self._bump(new, old)
        db.execute(
            "INSERT OR REPLACE INTO placements VALUES (?, ?)",
            (saved.key, msgspec.json.encode(saved)),
        )
        return saved

    def delete_placement(self, key: str) -> None:
        with self._write() as db:
            self.placement(key)
            db.execute("DELETE FROM placements WHERE key = ?", (key,))

    # -- bulk ----------------------------------------------------------------------

    def import_bundle(self, data: Mapping[str, Any]) -> dict[str, int]:
        """Create or update every widget (with inline items) and placement, in one transaction.

        Unchanged records keep their versions (and so their statistics). Returns how many
        records were created, updated and left unchanged.
        """
        if not isinstance(data, Mapping) or set(data) - {"widgets", "placements"}:
            raise ContentError("$", "must be an object with `widgets` and/or `placements` lists")
        counts = {"created": 0, "updated": 0, "unchanged": 0}

        def note(old: Any, saved: Any) -> None:
            counts["created" if old is None else "unchanged" if saved is old else "updated"] += 1

        parsed = []
        for i, raw in enumerate(data.get("widgets", [])):
            try:
                parsed.append(split_widget(raw))
            except ContentError as exc:
                raise ContentError(f"widgets[{i}].{exc.field}".rstrip("."), exc.rule) from exc
        placements = []
        for i, raw in enumerate(data.get("placements", [])):
            try:
                placements.append(load_spec(raw, PlacementSpec))
            except ContentError as exc:
                raise ContentError(f"placements[{i}].{exc.field}".rstrip("."), exc.rule) from exc
        with self._write() as db:
            for widget, items in parsed:
                old = self._maybe(self.widget, widget.key)
                owner = self._put_widget(db, widget, old)
                note(old, owner)
                for item in items:
                    old_item = self._maybe(self.item, widget.key, item.key)
                    note(old_item, self._put_item(db, owner, item, old_item))
            for i, spec in enumerate(placements):
                old = self._maybe(self.placement, spec.key)
                try:
                    note(old, self._put_placement(db, spec, old))
                except ContentError as exc:
                    raise ContentError(f"placements[{i}].{exc.field}", exc.rule) from exc
        return counts

    @staticmethod
    def _maybe(get: Any, *args: str) -> Any:
        try:
            return get(*args)
        except ContentNotFound:
            return None

    def export_bundle(self) -> dict[str, Any]:
        """Everything, in the shape :meth:`import_bundle` reads."""
        widgets = []
        for w in self.widgets():
            body = msgspec.to_builtins(w)
            if not w.is_recommendation:
                body["items"] = [msgspec.to_builtins(i) for i in self.items(w.key)]
            widgets.append(body)
        return {
            "widgets": widgets,
            "placements": [msgspec.to_builtins(p) for p in self.placements()],
        }

    # -- serving -------------------------------------------------------------------

    def snapshot(self) -> tuple[int, dict[str, CompiledPlacement]]:
        """The revision and every placement compiled for serving, read in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                revision = self.revision()
                widgets = {w.key: w for w in self.widgets()}
                items = {key: self.items(key) for key in widgets}
                specs = self.placements()
            finally:
                self._db.execute("COMMIT")
        return revision, {p.key: compile_placement(p, widgets, items) for p in specs}

    def close(self) -> None:
        with self._lock:
            self._db.close()


_NO_ITEMS = (
    "a {kind} widget takes its products from the recommender; "
    "items belong to banner, collection and offer widgets"
)
