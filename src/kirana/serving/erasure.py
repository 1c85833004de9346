"""Erasure of a person from what the personalise API keeps: decisions, caps, caches.

Listed in ``runtime.ERASURE``; runs in the API process, which owns the decision log's
writer. The writer first writes what it has queued (so a decision about the person that was
waiting in memory is not appended after the delete), then is held while the person's rows
leave the ``decisions`` table and every file it no longer uses is deleted (its commit log
needs no clean-up: the table keeps statistics only on columns that name nobody). From
suppression on, decisions about the person are not logged at all
(`decision_log.unless_suppressed`). Frequency-cap impressions are rows keyed by the same user
key in ``feedback.sqlite`` (the statistics there are per arm and segment and name nobody);
the file is rebuilt. The cached profile look-ups of this process are dropped.

Model outputs and recommendation lists are erased by ``kirana.models.erasure``.
"""

from __future__ import annotations

import sqlite3
from contextlib import nullcontext
from typing import TYPE_CHECKING

from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.participants import Participant, People, vacuum_delta, vacuum_sqlite
from kirana.serving.decision_log import table_path
from kirana.serving.extension import SERVICE, Personalization
from kirana.serving.feedback_store import feedback_path

if TYPE_CHECKING:
    from pathlib import Path

    from kirana.runtime import Platform


def erase_cap_impressions(path: Path, user_keys: list[str]) -> int:
    """Delete the person's frequency-cap impressions and rebuild the file."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        removed = sum(
            conn.execute("DELETE FROM cap_impressions WHERE user_key = ?", (k,)).rowcount
            for k in user_keys
        )
        conn.execute("COMMIT")
        vacuum_sqlite(conn)
    finally:
        conn.close()
    return removed


def participant(platform: Platform) -> Participant:
    settings = platform.settings

    def erase(people: People) -> dict[str, int]:
        running: Personalization | None = platform.services.get(SERVICE)
        if running is not None:
            running.service.profiles.forget()
        path = table_path(settings.lake_dir)
        match = {"user_key": people.user_keys, "profile_id": list(people.profile_ids)}
        with running.decisions.paused() if running is not None else nullcontext():
            rows = delete_rows_where_in(path, match)
            vacuum_delta(path)
        caps = erase_cap_impressions(feedback_path(settings.state_dir), people.user_keys)
        return {"decision_rows": rows, "cap_impressions": caps}

    return erase
