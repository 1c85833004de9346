"""A profile's latest events, read from the lake's ``events`` table by the days it was active.

The ``events`` table is partitioned by ``event_date`` (the UTC day of the corrected
``timestamp``), and a person is active on few of its days. The profiles consumer records
each identifier's active days in the profile store (``identity_event_days``), so a
timeline reads only those partitions, newest first, and stops once it has enough events:
milliseconds whatever the lake's size, where a scan of every partition took seconds on the
demo data alone. Days are read newest first because every event of an older day is older
than every event of a newer one, so the first ``limit`` events found that way are the
newest ``limit``.

A profile whose identifiers have no recorded days (events landed before the index existed)
is read with one filtered scan of the whole table, as before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

COLUMNS = ["message_id", "type", "event", "name", "user_id", "anonymous_id", "timestamp"]
_READ = [*COLUMNS, "properties"]
#: how often a reader looks for a newer version of the table (new events, erasures)
REFRESH_SECONDS = 1.0


class LakeTimeline:
    """Reads one lake's ``events`` table; keeps the table's state between calls."""

    def __init__(self, table_dir: Path) -> None:
        self._dir = table_dir
        self._lock = threading.Lock()
        self._table: Any = None
        self._dataset: ds.Dataset | None = None
        self._by_day: dict[date, list[ds.Fragment]] = {}
        self._version = -1
        self._checked = 0.0

    def _current(self) -> ds.Dataset | None:
        """The table's dataset, refreshed when it may have changed since the last call."""
        from deltalake import DeltaTable

        with self._lock:
            if time.monotonic() - self._checked < REFRESH_SECONDS and self._dataset is not None:
                return self._dataset
            if not (self._dir / "_delta_log").is_dir():
                return None
            if self._table is None:
                self._table = DeltaTable(self._dir)
            else:
                self._table.update_incremental()
            if self._table.version() != self._version:
                self._dataset = self._table.to_pyarrow_dataset()
                self._by_day = _fragments_by_day(self._dataset)
                self._version = self._table.version()
            self._checked = time.monotonic()
            return self._dataset

    def latest(
        self,
        user_ids: Sequence[str],
        anonymous_ids: Sequence[str],
        days: Sequence[date] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events of these identifiers, newest first.

        An event with a user id belongs to that user even when its anonymous id is someone
        else's (a shared device); an anonymous id counts only on events without a user id.
        ``days`` are the identifiers' active days (None or empty: scan every day).
        """
        if limit <= 0 or not (user_ids or anonymous_ids):
            return []
        try:
            return self._latest(user_ids, anonymous_ids, days, limit)
        except FileNotFoundError:  # an erasure or compaction vacuumed files under us
            self.refresh()
            return self._latest(user_ids, anonymous_ids, days, limit)

    def refresh(self) -> None:
        """Look for a newer version of the table on the next read."""
        with self._lock:
            self._checked = 0.0

    def _latest(
        self,
        user_ids: Sequence[str],
        anonymous_ids: Sequence[str],
        days: Sequence[date] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        dataset = self._current()
        if dataset is None:
            return []
        users, anons = pa.array(user_ids, pa.string()), pa.array(anonymous_ids, pa.string())
        who = pc.field("user_id").isin(users) | (
            pc.field("user_id").is_null() & pc.field("anonymous_id").isin(anons)
        )
        rows: list[dict[str, Any]] = []
        if not days:
            rows = dataset.to_table(filter=who, columns=_READ).to_pylist()
        else:
            newest_first = sorted(set(days), reverse=True)
            start, size = 0, 2
            by_day = self._by_day
            while start < len(newest_first) and len(rows) < limit:
                chunk = newest_first[start : start + size]
                # the days' files alone: cheaper than a partition filter over every file
                files = [f for day in chunk for f in by_day.get(day, ())]
                if files:
                    subset = ds.FileSystemDataset(
                        files, dataset.schema, dataset.format, dataset.filesystem
                    )
                    rows += subset.to_table(filter=who, columns=_READ).to_pylist()
                start, size = start + size, size * 2
        rows.sort(key=lambda r: r["message_id"])
        rows.sort(key=lambda r: r["timestamp"], reverse=True)
        return [_public(row) for row in rows[:limit]]


def _fragments_by_day(dataset: ds.Dataset) -> dict[date, list[ds.Fragment]]:
    """The table's data files by the ``event_date`` partition they belong to."""
    by_day: dict[date, list[ds.Fragment]] = {}
    for fragment in dataset.get_fragments():
        day = ds.get_partition_keys(fragment.partition_expression).get("event_date")
        by_day.setdefault(day, []).append(fragment)
    return by_day


def _public(row: dict[str, Any]) -> dict[str, Any]:
    item = {c: row[c] for c in COLUMNS if row[c] is not None}
    item["timestamp"] = row["timestamp"].isoformat()
    item["properties"] = json.loads(row["properties"]) if row["properties"] else {}
    return item


_readers: dict[Path, LakeTimeline] = {}
_readers_lock = threading.Lock()


def timeline_of(lake_dir: Path) -> LakeTimeline:
    """The process's reader of ``lake_dir``'s events table (one per lake, kept warm)."""
    key = Path(lake_dir).resolve()
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = LakeTimeline(key / "events")
        return reader
