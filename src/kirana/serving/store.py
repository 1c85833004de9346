"""The serving store: recommendation lists by widget and key, in SQLite.

Model jobs publish their outputs here (after landing them in the lake), and the
personalise API reads them. A separate SQLite file in WAL mode lets a job in
one process replace a widget's lists while API processes keep reading the
previous version: the swap is one transaction, so readers never see a half
published widget.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import msgspec

SCHEMA = """
CREATE TABLE IF NOT EXISTS recommendations (
    widget TEXT NOT NULL,
    key TEXT NOT NULL,
    items BLOB NOT NULL,
    PRIMARY KEY (widget, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS published (
    widget TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    rows INTEGER NOT NULL,
    published_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""

Items = list[tuple[str, float]]


class ServingStore:
    """Recommendation lists keyed by (widget, key).

    ``key`` is a user id for per-user widgets (buy again, recommended for you),
    an item id for per-item widgets (frequently bought together) and ``"*"``
    for global lists (popular items).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def replace_recommendations(
        self, widget: str, rows: Iterable[tuple[str, Items]], *, version: str
    ) -> int:
        """Atomically replace every list of ``widget``; returns how many keys it now has."""
        encode = msgspec.json.encode
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM recommendations WHERE widget = ?", (widget,))
                count = 0
                batch: list[tuple[str, str, bytes]] = []
                for key, items in rows:
                    batch.append((widget, str(key), encode([[str(i), float(s)] for i, s in items])))
                    if len(batch) >= 10_000:
                        self._db.executemany("INSERT INTO recommendations VALUES (?, ?, ?)", batch)
                        count += len(batch)
                        batch.clear()
                if batch:
                    self._db.executemany("INSERT INTO recommendations VALUES (?, ?, ?)", batch)
                    count += len(batch)
                self._db.execute(
                    "INSERT OR REPLACE INTO published (widget, version, rows) VALUES (?, ?, ?)",
                    (widget, version, count),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return count

    def recommendations(self, widget: str, key: str) -> Items:
        """The list for ``key`` in ``widget``, best first; empty when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT items FROM recommendations WHERE widget = ? AND key = ?", (widget, key)
            ).fetchone()
        if row is None:
            return []
        return [(item, score) for item, score in msgspec.json.decode(row[0])]

    def delete_keys(self, widgets: Iterable[str], keys: Iterable[str]) -> int:
        """Remove the lists of ``keys`` in ``widgets`` (an erased person); returns how many."""
        pairs = [(w, k) for w in widgets for k in keys]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = sum(
                    self._db.execute(
                        "DELETE FROM recommendations WHERE widget = ? AND key = ?", pair
                    ).rowcount
                    for pair in pairs
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed

    def versions(self) -> dict[str, tuple[str, int]]:
        """Per widget: the published version and its number of keys."""
        with self._lock:
            rows = self._db.execute("SELECT widget, version, rows FROM published").fetchall()
        return {w: (v, n) for w, v, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def serving_path(state_dir: Path) -> Path:
    """Where the serving store lives inside a data dir's state folder."""
    return state_dir / "serving.sqlite"
