"""What the CLI, the API and ``kirana serve`` share: status, removal, the background job."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kirana.redaction import scrub
from kirana.replication.lake import table_path
from kirana.replication.specs import PostgresConfig, redacted, secret_values
from kirana.replication.state import ReplicationState, SourceBusy

if TYPE_CHECKING:
    from kirana.runtime import Platform

log = logging.getLogger(__name__)


def source_status(state: ReplicationState, lake_dir: Path, name: str) -> dict[str, Any]:
    """A source's definition (passwords hidden), progress, tables and recent files."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    config = state.get(name)
    progress = state.progress(name)
    tables = {}
    if config.kind == "files":
        names = [config.table]
    elif config.kind == "mysql":  # one database per source: the table name alone
        names = [t.name.rpartition(".")[2] for t in config.tables]
    else:
        names = [t.lake_name("public") for t in config.tables]
    for table in names:
        path = table_path(lake_dir, name, table)
        try:
            delta = DeltaTable(path)
            tables[table] = {
                "sql_name": f"{name}_{table}",
                "delta_version": delta.version(),
                "position": delta.transaction_version(f"kirana.replication.{name}"),
            }
        except TableNotFoundError:
            tables[table] = {"sql_name": f"{name}_{table}", "delta_version": None}
    out: dict[str, Any] = {
        "name": name,
        "kind": config.kind,
        "config": redacted(config),
        "snapshot_done": progress.snapshot_done,
        "checkpoint": progress.checkpoint,
        "rows_applied": progress.rows_applied,
        "last_sync_at": progress.last_sync_at,
        "seconds_since_sync": None
        if progress.last_sync_at is None
        else round(time.time() - progress.last_sync_at, 1),
        "lag_seconds": current_lag(progress.lag_seconds, progress.last_sync_at, time.time()),
        "lag_seconds_at_last_sync": progress.lag_seconds,
        "last_error": scrub(progress.last_error, secret_values(config)),
        "warnings": state.warnings(name),
        "tables": tables,
    }
    if config.kind == "files":
        out["files"] = [
            {"seq": f.seq, "name": f.name, "state": f.state, "rows": f.rows, "reason": f.reason}
            for f in state.files(name, limit=50)
        ]
    return out


def current_lag(lag_at_sync: float | None, last_sync_at: float | None, now: float) -> float | None:
    """How far behind the source the lake may be now: the lag measured at the last sync,
    plus the time since. It grows while the replicator is down or failing (a running
    replicator re-measures it every round), so a stalled source shows as falling behind."""
    if last_sync_at is None:
        return None
    return round((lag_at_sync or 0.0) + max(0.0, now - last_sync_at), 1)


class SourceUnreachable(RuntimeError):
    """The source database refused a removal step; the message is scrubbed of credentials."""


def remove_source(state: ReplicationState, name: str, *, drop_slot: bool = True) -> None:
    """Forget a source; for PostgreSQL also drop its slot (which otherwise holds WAL forever)."""
    config = state.get(name)
    if config.kind == "postgres" and drop_slot:
        import psycopg2

        with state.exclusive(name):
            try:
                _drop_slot(config)
            except psycopg2.Error as exc:
                message = scrub(f"{type(exc).__name__}: {exc}".strip(), secret_values(config))
                raise SourceUnreachable(
                    f"cannot drop the replication slot of {name!r}: {message}; fix the source "
                    "or remove it without dropping the slot (drop_slot=false, --no-drop-slot)"
                ) from exc
    state.remove(name)


def _drop_slot(config: PostgresConfig) -> None:
    import psycopg2

    conn = psycopg2.connect(config.dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (config.slot_name(),),
            )
            cur.execute(f'DROP PUBLICATION IF EXISTS "{config.publication_name()}"')
    finally:
        conn.close()


class ReplicationJob:
    """Inside ``kirana serve``: bring every source up to date, every few seconds.

    Each run re-reads the source list from the state file, so sources added
    through the API or the CLI are picked up without a restart. A source that
    another process is syncing is skipped for this round.
    """

    def __init__(self, lake_dir: Path, state_dir: Path, max_seconds_per_source: float) -> None:
        self.lake_dir = lake_dir
        self.state_dir = state_dir
        self.max_seconds = max_seconds_per_source
        self._stop = threading.Event()

    def __call__(self) -> None:
        from kirana.replication.sync import Replicator

        state = ReplicationState(self.state_dir)
        try:
            for config in state.list():
                if self._stop.is_set():
                    return
                try:
                    Replicator(config, self.lake_dir, state).run(
                        stop=self._stop, max_seconds=self.max_seconds
                    )
                except SourceBusy:
                    continue
                except Exception:
                    log.exception("replication of %s failed; retrying next round", config.name)
        finally:
            state.close()

    def close(self) -> None:
        self._stop.set()


def attach(platform: Platform) -> None:
    """Register the replication job with ``kirana serve`` (see runtime.EXTENSIONS)."""
    settings = platform.settings.replication
    if not settings.run_in_serve:
        return
    job = ReplicationJob(
        platform.settings.lake_dir, platform.settings.state_dir, settings.max_seconds_per_source
    )
    platform.on_close(job.close)
    platform.schedule("replication", settings.every_seconds, job)
