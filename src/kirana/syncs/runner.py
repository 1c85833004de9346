"""Running a sync: read the source, diff against the last snapshot, queue the changes.

The new snapshot is written first under a name of its own; then, in one
transaction of the delivery store, the changed rows are queued and the sync
is moved to that snapshot. A crash before the commit leaves the old snapshot
in charge, and the next run queues the same changes under the same record
ids (key + before/after hashes), which the queue ignores as duplicates.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kirana.destinations.config import ConfigError
from kirana.destinations.records import OutboundRecord
from kirana.destinations.store import DeliveryStore
from kirana.identity.store import SQLProfileStore
from kirana.syncs.diff import Diff, diff_rows
from kirana.syncs.model import SyncConfig
from kirana.syncs.sources import read_source
from kirana.syncs.store import SyncStore

log = logging.getLogger(__name__)
RUN_HOLD_SECONDS = 3600.0


class SyncBusy(RuntimeError):
    """Another run of the same sync is in progress."""


@dataclass
class RunReport:
    run_id: int
    sync: str
    rows_read: int
    added: int
    updated: int
    deleted: int
    unchanged: int
    queued: int


def record_id(sync: str, key: str, before: str | None, after: str) -> str:
    """Stable per change: the same diff always yields the same id (replays dedupe).

    The same formula runs inside DuckDB for added and changed rows
    (:meth:`kirana.syncs.diff.Diff.iter_changed` with ``id_prefix = sync + "|"``).
    """
    return hashlib.md5(f"{sync}|{key}|{before or ''}|{after}".encode()).hexdigest()


def deleted_records(config: SyncConfig, diff: Diff, columns: list[str]) -> list[OutboundRecord]:
    """Mirror syncs: one delete per key that left the source, its fields set to null."""
    if config.mode != "mirror":
        return []
    cleared = dict.fromkeys(config.mapping or columns)
    return [
        OutboundRecord(
            record_id(config.name, k, prev, "deleted"), k, k, "delete", cleared, config.name
        )
        for k, prev in diff.removed
    ]


class SyncRunner:
    def __init__(
        self,
        syncs: SyncStore,
        delivery: DeliveryStore,
        lake_dir: Path,
        snapshot_dir: Path,
        open_profiles: Callable[[], SQLProfileStore] | None = None,
    ) -> None:
        self.syncs = syncs
        self.delivery = delivery
        self.lake_dir = lake_dir
        self.snapshot_dir = snapshot_dir
        self._open_profiles = open_profiles

    def run(self, name: str, trigger: str = "manual") -> RunReport:
        """Run sync ``name`` once; raises ``ConfigError`` / ``SyncBusy`` (recorded in history)."""
        config = self.syncs.get(name)
        if config is None:
            raise ConfigError(f"no sync named {name!r}; see `kirana syncs list`")
        if not self.syncs.claim(name, RUN_HOLD_SECONDS):
            raise SyncBusy(f"sync {name!r} is already running; try again when it finishes")
        run_id = self.syncs.start_run(name, trigger)
        try:
            return self._run(config, run_id)
        except Exception as exc:
            from kirana.redaction import remembered, scrub

            error = scrub(f"{type(exc).__name__}: {exc}", remembered()) or ""
            self.syncs.fail_run(run_id, name, error)  # run history never shows a credential
            raise

    def _run(self, config: SyncConfig, run_id: int) -> RunReport:
        if self.delivery.destination(config.destination) is None:
            raise ConfigError(
                f"destination {config.destination!r} does not exist; create it with "
                "`kirana destinations create`"
            )
        profiles = self._open_profiles() if config.source.audience and self._open_profiles else None
        try:
            table = read_source(config.source, self.lake_dir, profiles)
        finally:
            if profiles is not None:
                profiles.close()
        previous = self.syncs.snapshot(config.name)
        new_snapshot = self.snapshot_dir / config.name / f"snapshot-{run_id}.parquet"
        conn = duckdb.connect()
        try:
            diff = diff_rows(
                conn,
                table,
                config.key,
                config.mapping,
                Path(previous) if previous else None,
                new_snapshot,
                keep_removed=config.mode == "insert",
            )
            counts = {
                "rows_read": diff.rows_read,
                "added": diff.added,
                "updated": diff.updated if config.mode != "insert" else 0,
                "deleted": len(diff.removed) if config.mode == "mirror" else 0,
                "unchanged": diff.unchanged,
            }
            origin = f"sync:{config.name}"
            with self.delivery.transaction():
                queued = 0
                action = "insert" if config.mode == "insert" else "upsert"
                for rows in diff.iter_changed(
                    id_prefix=f"{config.name}|", only_new=config.mode == "insert"
                ):
                    queued += self.delivery.enqueue_json(
                        config.destination, action, config.name, origin, rows
                    )
                deletes = deleted_records(config, diff, table.column_names)
                queued += self.delivery.enqueue([(config.destination, r) for r in deletes], origin)
                counts["queued"] = queued
                self.syncs.finish_run(run_id, config.name, counts, str(new_snapshot))
        except BaseException:
            new_snapshot.unlink(missing_ok=True)  # the old snapshot stays in charge
            raise
        finally:
            conn.close()
        if previous and previous != str(new_snapshot):
            Path(previous).unlink(missing_ok=True)
        return RunReport(run_id, config.name, **counts)

    def run_due(self) -> list[RunReport]:
        """Run every scheduled sync whose time has come (errors go to run history)."""
        reports = []
        for name in self.syncs.due():
            try:
                reports.append(self.run(name, trigger="schedule"))
            except Exception:
                log.exception("scheduled sync %s failed", name)
        return reports
