"""Erasure of a person from model outputs and from the serving store they are published to.

Listed in ``runtime.ERASURE``. Each job's lock is held for the whole erasure, so no run can
land an output computed from the lake as it was before the person's rows were deleted; a
run in progress is waited for. Then the person's rows leave every per-customer ``model_*``
table (file by file, see ``privacy.delta_rows``), each table's old files and commit
history go (their file statistics would still name the person), and their lists leave the
per-user widgets of the serving store, whose file is rebuilt. Later runs read a lake
without the person, and publishing skips suppressed ids, so nothing brings them back.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

from kirana.lake.catalog import lake_tables
from kirana.models.jobs import outputs
from kirana.models.jobs.definitions import JOBS
from kirana.models.jobs.locks import JobBusy, job_lock
from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.participants import (
    Participant,
    People,
    forget_delta_history,
    vacuum_sqlite_file,
)
from kirana.serving.store import ServingStore, serving_path

if TYPE_CHECKING:
    from pathlib import Path

    from kirana.runtime import Platform

#: How long an erasure waits for a running model job before giving up (it can be rerun).
WAIT_FOR_JOBS_SECONDS = 600.0


def per_user_widgets() -> list[str]:
    """Serving widgets whose keys are customer ids (not item ids, not ``*``)."""
    return sorted(
        j.publication.widget
        for j in JOBS.values()
        if j.publication.widget and j.publication.key == "user_id"
    )


def _hold_every_job(stack: ExitStack, lock_dir: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    for name in sorted(JOBS):
        while True:
            try:
                stack.enter_context(job_lock(lock_dir, name, "an erasure"))
                break
            except JobBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def participant(platform: Platform) -> Participant:
    settings = platform.settings

    def erase(people: People) -> dict[str, int]:
        ids = people.customer_ids
        with ExitStack() as stack:
            _hold_every_job(stack, settings.state_dir / "jobs", WAIT_FOR_JOBS_SECONDS)
            rows = 0
            for name, table in lake_tables(settings.lake_dir).items():
                if name.startswith(outputs.TABLE_PREFIX):
                    rows += delete_rows_where_in(table, {"user_id": ids})
                    forget_delta_history(table)
            path = serving_path(settings.state_dir)
            keys = 0
            if path.exists():
                serving = ServingStore(path)
                try:
                    keys = serving.delete_keys(per_user_widgets(), ids)
                finally:
                    serving.close()
                vacuum_sqlite_file(path)
        return {"output_rows": rows, "serving_lists": keys}

    return erase
