"""The run registry: what each model-job run did, in SQLite (WAL) beside the other state.

A run row is written when the run starts (status ``running``) and completed once: with
``succeeded`` (the output version it wrote, its metrics) or ``failed`` (the error). A
rollback is recorded as a run of its own (``kind = 'rollback'``, ``rolled_back_to`` = the
run restored), so the registry reads as the output's full history: the latest succeeded row
of an output is what the lake and serving hold. Processes share it through the file (the
API, ``kirana jobs`` and a worker may all touch it).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'run',
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    parameters TEXT NOT NULL,
    data_version TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    output TEXT,
    output_version INTEGER,
    rolled_back_to TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, started_at);
"""

_COLUMNS = (
    "run_id, job, kind, engine, status, parameters, data_version, metrics, output, "
    "output_version, rolled_back_to, error, started_at, finished_at, seconds"
)


@dataclass(frozen=True)
class Run:
    """One row of the registry."""

    run_id: str
    job: str
    kind: str
    engine: str
    status: str  # running | succeeded | failed
    parameters: dict[str, Any]
    data_version: dict[str, Any]
    metrics: dict[str, Any]
    output: str | None
    output_version: int | None
    rolled_back_to: str | None
    error: str | None
    started_at: str
    finished_at: str | None
    seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable by start time, unique without coordination: ``r20261130T101500Z-1a2b3c``."""
    return f"r{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunRegistry:
    """Runs of model jobs, by id and by job, newest first."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def start(
        self,
        job: str,
        engine: str,
        parameters: dict[str, Any],
        *,
        kind: str = "run",
        output: str | None = None,
        rolled_back_to: str | None = None,
    ) -> str:
        run_id = new_run_id()
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (run_id, job, kind, engine, status, parameters, output, "
                "rolled_back_to, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, job, kind, engine, _dumps(parameters), output, rolled_back_to, _now()),
            )
        return run_id

    def interrupt_running(self, job: str) -> int:
        """Mark ``job``'s ``running`` rows failed: call it holding the job's lock, when no
        run of the job can still be alive (its process died: the OS released the lock)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, "
                "error = 'interrupted: the process running it stopped' "
                "WHERE job = ? AND status = 'running'",
                (_now(), job),
            )
        return cur.rowcount

    def set_data_version(self, run_id: str, data_version: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET data_version = ? WHERE run_id = ?", (_dumps(data_version), run_id)
            )

    def add_parameters(self, run_id: str, extra: dict[str, Any]) -> None:
        """Merge ``extra`` into the run's parameters (known only once the engine is up)."""
        run = self.get(run_id)
        if run is None:
            raise KeyError(run_id)
        with self._lock:
            self._db.execute(
                "UPDATE runs SET parameters = ? WHERE run_id = ?",
                (_dumps({**run.parameters, **extra}), run_id),
            )

    def succeed(
        self, run_id: str, *, metrics: dict[str, Any], output_version: int | None, seconds: float
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status = 'succeeded', metrics = ?, output_version = ?, "
                "finished_at = ?, seconds = ? WHERE run_id = ?",
                (_dumps(metrics), output_version, _now(), round(seconds, 3), run_id),
            )

    def fail(self, run_id: str, error: str, seconds: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, seconds = ? "
                "WHERE run_id = ?",
                (error, _now(), round(seconds, 3), run_id),
            )

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return _run(row) if row else None

    def runs(self, job: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first (optionally of one job)."""
        where, args = ("WHERE job = ?", [job]) if job else ("", [])
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs {where} ORDER BY started_at DESC, run_id DESC "
                "LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [_run(r) for r in rows]

    def current(self, output: str) -> Run | None:
        """The latest succeeded run (or rollback) of ``output``: what the lake holds now."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE output = ? AND status = 'succeeded' "
                "ORDER BY finished_at DESC, run_id DESC LIMIT 1",
                (output,),
            ).fetchone()
        return _run(row) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _run(row: tuple) -> Run:
    values = list(row)
    for i in (5, 6, 7):
        values[i] = json.loads(values[i])
    return Run(*values)


def registry_path(state_dir: Path) -> Path:
    """Where the registry lives inside a data dir's state folder."""
    return state_dir / "model_runs.sqlite"
