"""Erasure of a person from the exposure ledger (listed in ``runtime.ERASURE``).

The ledger (``exposures`` in ``experiments.sqlite``) keys rows by unit,
``<hash attribute>:<hash value>``, and the value is whatever the person was bucketed on: a
user id, an anonymous id, or an attribute such as an e-mail. Rows whose value is one of the
person's identifiers (or their profile id) go, and the file is rebuilt. Their
``Experiment Viewed`` events are events like any other: the event log and the lake lose them
with the rest. Suppressed people are assigned but never logged again, so the ledger stays
clean; the in-process set of logged units is dropped too. Their report counts stay as they
were until the next analysis, which reads the lake.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from kirana.experiments.platform import STORE_FILE
from kirana.privacy.participants import Participant, People, vacuum_sqlite

if TYPE_CHECKING:
    from pathlib import Path

    from kirana.runtime import Platform


def erase_exposures(path: Path, values: list[str]) -> int:
    """Delete ledger rows whose unit's value is one of ``values``; rebuild the file."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        removed = conn.execute(  # one pass for a whole batch of people
            "DELETE FROM exposures WHERE substr(unit, instr(unit, ':') + 1) "
            "IN (SELECT value FROM json_each(?))",
            (json.dumps(values),),
        ).rowcount
        conn.execute("COMMIT")
        vacuum_sqlite(conn)
    finally:
        conn.close()
    return removed


def participant(platform: Platform) -> Participant:
    def erase(people: People) -> dict[str, int]:
        running = platform.services.get("experiments")
        if running is not None:
            running.assigner.forget_known()
        path = platform.settings.state_dir / STORE_FILE
        return {"exposures": erase_exposures(path, people.values)}

    return erase
