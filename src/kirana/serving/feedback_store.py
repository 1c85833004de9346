"""Ranking statistics, frequency-cap impressions and the feedback consumer's position, in SQLite.

The feedback consumer is the only writer; personalise API processes read. Everything one
batch of events changes (decayed counts per arm and segment, which slots have been counted,
cap impressions, the log position) is committed in **one** transaction, so a crash replays
the batch from the old position with none of its effects applied: exactly once. Each write
stamps the changed rows with a new ``rev``, so readers reload only rows newer than the last
``rev`` they saw.

``feedback_seen`` also makes feedback idempotent across *different* log records: a client that
retries an event, or sends ``Product Clicked`` then ``Product Added`` for the same slot,
counts once per (slot, kind).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from kirana.automation.stats import FORMAT, FeedbackStats, StatsKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS arm_stats (
    placement TEXT NOT NULL, arm TEXT NOT NULL, segment TEXT NOT NULL,
    impressions REAL NOT NULL, clicks REAL NOT NULL, shown REAL NOT NULL, t REAL NOT NULL,
    epoch_version INTEGER NOT NULL, epoch_start REAL NOT NULL, rev INTEGER NOT NULL,
    PRIMARY KEY (placement, arm, segment));
CREATE INDEX IF NOT EXISTS arm_stats_rev ON arm_stats (rev);
CREATE TABLE IF NOT EXISTS feedback_seen (
    slot TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (slot, kind)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_seen_at ON feedback_seen (at);
CREATE TABLE IF NOT EXISTS cap_impressions (
    user_key TEXT NOT NULL, widget TEXT NOT NULL, slot TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (user_key, widget, slot)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cap_impressions_at ON cap_impressions (at);
CREATE TABLE IF NOT EXISTS feedback_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO feedback_meta VALUES ('rev', 0);
"""


def feedback_path(state_dir: Path) -> Path:
    return state_dir / "feedback.sqlite"


class FeedbackStore:
    """One connection; safe to share between threads of a process (calls are serialised)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[int]:
        """A write transaction; yields the ``rev`` its changes are stamped with."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE feedback_meta SET value = value + 1 WHERE name = 'rev'")
                rev = self._db.execute(
                    "SELECT value FROM feedback_meta WHERE name = 'rev'"
                ).fetchone()[0]
                yield int(rev)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- inside a transaction ------------------------------------------------------

    def mark_seen(self, slot: str, kind: str, at: float) -> bool:
        """Remember (slot, kind); False when it was counted before."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO feedback_seen VALUES (?, ?, ?)", (slot, kind, at)
        )
        return cur.rowcount == 1

    def save_cells(self, stats: FeedbackStats, keys: Iterable[StatsKey], rev: int) -> None:
        rows = []
        for key in keys:
            r = stats.row(key)
            if r is not None:
                version, start = r["epoch"]
                counts = (r["impressions"], r["clicks"], r["shown"], r["t"])
                rows.append((r["placement"], r["arm"], r["segment"], *counts, version, start, rev))
        self._db.executemany("INSERT OR REPLACE INTO arm_stats VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def add_cap_impressions(self, rows: Sequence[tuple[str, str, str, float]]) -> None:
        """(user key, widget, slot, at) rows; a repeated slot is counted once."""
        self._db.executemany("INSERT OR IGNORE INTO cap_impressions VALUES (?, ?, ?, ?)", rows)

    def set_position(self, consumer: str, position: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO feedback_meta VALUES (?, ?)", (f"position:{consumer}", position)
        )

    # -- reading -------------------------------------------------------------------

    def position(self, consumer: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM feedback_meta WHERE name = ?", (f"position:{consumer}",)
            ).fetchone()
        return None if row is None else int(row[0])

    def load_stats(self, half_life_seconds: float, since_rev: int = 0) -> tuple[FeedbackStats, int]:
        """Cells changed after ``since_rev`` (all with 0), and the newest rev among them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT placement, arm, segment, impressions, clicks, shown, t, epoch_version, "
                "epoch_start, rev FROM arm_stats WHERE rev > ?",
                (since_rev,),
            ).fetchall()
        data = {
            "format": FORMAT,
            "half_life_seconds": None if math.isinf(half_life_seconds) else half_life_seconds,
            "arms": [
                {
                    "placement": r[0],
                    "arm": r[1],
                    "segment": r[2],
                    "impressions": r[3],
                    "clicks": r[4],
                    "shown": r[5],
                    "t": r[6],
                    "epoch": [r[7], r[8]],
                }
                for r in rows
            ],
        }
        return FeedbackStats.from_dict(data), max((r[9] for r in rows), default=since_rev)

    def impressions_of(
        self, user_key: str, widgets: Sequence[str], since: float
    ) -> dict[str, list[datetime]]:
        """When ``user_key`` saw each of ``widgets`` after ``since`` (for frequency caps)."""
        if not widgets:
            return {}
        marks = ",".join("?" * len(widgets))
        with self._lock:
            rows = self._db.execute(
                f"SELECT widget, at FROM cap_impressions WHERE user_key = ? "
                f"AND widget IN ({marks}) AND at > ?",
                (user_key, *widgets, since),
            ).fetchall()
        out: dict[str, list[datetime]] = {}
        for widget, at in rows:
            out.setdefault(widget, []).append(datetime.fromtimestamp(at, UTC))
        return out

    def prune(self, seen_before: float, impressions_before: float) -> tuple[int, int]:
        """Forget counted slots and cap impressions older than the given POSIX times."""
        with self._lock:
            a = self._db.execute("DELETE FROM feedback_seen WHERE at < ?", (seen_before,)).rowcount
            b = self._db.execute(
                "DELETE FROM cap_impressions WHERE at < ?", (impressions_before,)
            ).rowcount
        return a, b

    def close(self) -> None:
        with self._lock:
            self._db.close()
