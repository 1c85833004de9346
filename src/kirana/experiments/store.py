"""SQLite (WAL) storage for experiments, feature flags, metrics and the exposure ledger.

One file, ``<state_dir>/experiments.sqlite``, shared by every process of a deployment: the API
reads definitions (and rebuilds its cached registry when ``revision`` moves), the CLI writes
them, and any process assigning users records exposures. Each thread gets its own connection
because SQLite connections must not be shared mid-transaction; WAL lets readers proceed while
one writer commits.

The ``exposures`` table is the durable "already logged" set keyed by (experiment, unit): the
:mod:`kirana.experiments.exposures` logger inserts and appends the ``Experiment Viewed`` event
to the event log inside one ``BEGIN IMMEDIATE`` transaction, so two processes cannot both log
the same user, and a crash before the commit only means the (deterministic) event is appended
again on the next request - and the lake loader drops the duplicate messageId.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kirana.store.sqlite_connections import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS definitions (
    kind TEXT NOT NULL,            -- 'experiment', 'flag' or 'metric'
    key TEXT NOT NULL,
    definition TEXT NOT NULL,      -- JSON
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS reports (
    experiment TEXT PRIMARY KEY,   -- the latest report of each experiment, as JSON
    analysed_at TEXT NOT NULL,
    report TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposures (
    experiment TEXT NOT NULL,
    unit TEXT NOT NULL,            -- '<hash attribute>:<hash value>'
    variation TEXT NOT NULL,
    first_at TEXT NOT NULL,
    PRIMARY KEY (experiment, unit)
) WITHOUT ROWID;
"""

KINDS = ("experiment", "flag", "metric")
T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class StoredDefinition:
    """One row of ``definitions``: the JSON plus when it was created and last changed."""

    __slots__ = ("created_at", "definition", "key", "kind", "updated_at")

    def __init__(self, kind: str, key: str, definition: dict[str, Any], created: str, updated: str):
        self.kind = kind
        self.key = key
        self.definition = definition
        self.created_at = datetime.fromisoformat(created)
        self.updated_at = datetime.fromisoformat(updated)


class ExperimentStore:
    """Definitions and exposures in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connections = ThreadConnections(path)
        self._db.executescript(SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction that holds SQLite's write lock from its first statement.

        Read-validate-write sequences (e.g. "no running experiment overlaps this namespace")
        run inside it, so two processes cannot both pass the check and both write.
        """
        with self._connections.transaction():
            yield

    # -- definitions ----------------------------------------------------------------

    def revision(self) -> int:
        """A counter bumped by every definition change (caches compare it)."""
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])

    def get(self, kind: str, key: str) -> StoredDefinition | None:
        row = self._db.execute(
            "SELECT kind, key, definition, created_at, updated_at FROM definitions "
            "WHERE kind = ? AND key = ?",
            (kind, key),
        ).fetchone()
        return StoredDefinition(row[0], row[1], json.loads(row[2]), row[3], row[4]) if row else None

    def all(self, kind: str) -> list[StoredDefinition]:
        rows = self._db.execute(
            "SELECT kind, key, definition, created_at, updated_at FROM definitions "
            "WHERE kind = ? ORDER BY key",
            (kind,),
        ).fetchall()
        return [StoredDefinition(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def put(self, kind: str, key: str, definition: dict[str, Any]) -> None:
        """Insert or replace; call inside :meth:`write`."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        now = _now()
        self._db.execute(
            "INSERT INTO definitions VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, key) "
            "DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            (kind, key, json.dumps(definition, sort_keys=True), now, now),
        )
        self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")

    def delete(self, kind: str, key: str) -> bool:
        """Delete; call inside :meth:`write`."""
        cur = self._db.execute("DELETE FROM definitions WHERE kind = ? AND key = ?", (kind, key))
        self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        return cur.rowcount > 0

    # -- reports --------------------------------------------------------------------

    def save_report(self, experiment: str, report: dict[str, Any]) -> None:
        """Keep ``report`` as the latest of ``experiment`` (any process may then serve it)."""
        self._db.execute(
            "INSERT INTO reports VALUES (?, ?, ?) ON CONFLICT (experiment) DO UPDATE SET "
            "analysed_at = excluded.analysed_at, report = excluded.report",
            (experiment, report["analysed_at"], json.dumps(report, allow_nan=False)),
        )

    def latest_report(self, experiment: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT report FROM reports WHERE experiment = ?", (experiment,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def forget_report(self, experiment: str) -> None:
        self._db.execute("DELETE FROM reports WHERE experiment = ?", (experiment,))

    # -- exposures ------------------------------------------------------------------

    def known_exposures(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (experiment, unit) pairs are already logged (a read; no lock taken)."""
        found: set[tuple[str, str]] = set()
        for experiment, unit in keys:
            row = self._db.execute(
                "SELECT 1 FROM exposures WHERE experiment = ? AND unit = ?", (experiment, unit)
            ).fetchone()
            if row:
                found.add((experiment, unit))
        return found

    def record_exposures(
        self,
        rows: Iterable[tuple[str, str, str]],
        emit: Callable[[list[tuple[str, str, str]]], T],
    ) -> list[tuple[str, str, str]]:
        """Insert new (experiment, unit, variation) rows and call ``emit(new_rows)`` before the
        commit; returns the rows that were new. If ``emit`` raises, nothing is recorded."""
        now = _now()
        new: list[tuple[str, str, str]] = []
        # The ledger commit need not be fsync'd: the event (the acknowledged fact) was made
        # durable by ``emit``; if an OS crash loses the ledger row, the next request re-appends
        # the same messageId and the lake drops it. Saves one fsync per new exposure.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.write():
                for experiment, unit, variation in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO exposures VALUES (?, ?, ?, ?)",
                        (experiment, unit, variation, now),
                    )
                    if cur.rowcount:
                        new.append((experiment, unit, variation))
                if new:
                    emit(new)
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        return new

    def forget_exposures(self, experiment: str) -> None:
        """Drop the ledger of a deleted experiment; call inside :meth:`write`."""
        self._db.execute("DELETE FROM exposures WHERE experiment = ?", (experiment,))

    def exposure_counts(self, experiment: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT variation, count(*) FROM exposures WHERE experiment = ? GROUP BY variation",
            (experiment,),
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def close(self) -> None:
        self._connections.close()
