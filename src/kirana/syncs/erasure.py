"""Erasure of a person from sync snapshots and run history (listed in ``runtime.ERASURE``).

A snapshot is a Parquet file of ``(k, h)``: each delivered row's key and the hash of its
fields. Rows whose key is one of the person's identifiers (or their profile id) are dropped
and the file is replaced atomically (write aside, fsync, rename). Each sync is claimed for
the rewrite, like a run, so no run reads a snapshot while it changes; a running sync is
waited for. Run errors that quote an identifier are blanked in place.

Once dropped from the snapshot the person's key is no longer "delivered": a mirror sync
therefore sends no delete for it, and the copy in the destination must be erased there (see
docs/profiles.md). Their queued records are erased by ``kirana.destinations.erasure``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kirana.destinations.extension import delivery_store
from kirana.privacy.participants import Participant, People
from kirana.syncs.service import snapshot_dir
from kirana.syncs.store import SyncStore

if TYPE_CHECKING:
    from kirana.destinations.store import DeliveryStore
    from kirana.runtime import Platform

ERASED = "[erased]"
WAIT_FOR_RUN_SECONDS = 600.0
HOLD_SECONDS = 600.0


def drop_keys(snapshot: Path, keys: list[str]) -> int:
    """Rewrite ``snapshot`` without rows keyed by ``keys``; returns how many went."""
    table = pq.read_table(snapshot)
    gone = pc.is_in(table.column("k"), value_set=pa.array(keys, pa.string()))
    removed = pc.sum(gone).as_py() or 0
    if not removed:
        return 0
    aside = snapshot.with_name(f".{snapshot.name}.erasing")
    pq.write_table(table.filter(pc.invert(gone)), aside)
    with open(aside, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(aside, snapshot)
    return int(removed)


def _claim(syncs: SyncStore, name: str) -> None:
    deadline = time.monotonic() + WAIT_FOR_RUN_SECONDS
    while not syncs.claim(name, HOLD_SECONDS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"sync {name!r} kept running; run the erasure again later")
        time.sleep(0.5)


def _release(store: DeliveryStore, name: str) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE syncs SET running_until = NULL WHERE name = ?", (name,))


def erase_person(store: DeliveryStore, folder: Path, values: list[str]) -> dict[str, int]:
    syncs = SyncStore(store)
    rows = 0
    names = [c.name for c in syncs.all()]
    for name in names:
        _claim(syncs, name)
        try:
            for snapshot in sorted((folder / name).glob("*.parquet")):
                rows += drop_keys(snapshot, values)
        finally:
            _release(store, name)
    for orphan in sorted(folder.glob("*/*.parquet")):  # of syncs deleted meanwhile
        if orphan.parent.name not in names:
            rows += drop_keys(orphan, values)
    errors = 0
    with store.transaction() as conn:
        for value in values:
            errors += conn.execute(
                "UPDATE sync_runs SET error = replace(error, ?, ?) WHERE instr(error, ?) > 0",
                (value, ERASED, value),
            ).rowcount
    return {"snapshot_rows": rows, "errors_scrubbed": errors}


def participant(platform: Platform) -> Participant:
    def erase(people: People) -> dict[str, int]:
        return erase_person(
            delivery_store(platform), snapshot_dir(platform.settings), people.values
        )

    return erase
