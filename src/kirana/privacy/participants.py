"""How subsystems that keep personal data of their own take part in an erasure.

The privacy package erases what it owns (event log, ``events`` lake table, profile store,
quarantine). Everything else that may hold a person — model outputs, the serving store, the
decision log, experiment exposures, delivery queues, sync snapshots — plugs in as a
*participant*: a named function from the :class:`People` to per-store counts. The privacy
package never imports those subsystems; ``runtime.ERASURE`` lists their modules, each with
``participant(platform) -> Participant``, and ``Platform.on_erase`` adds more at run time.

Every participant must be idempotent (an erasure may be run again, after a failure or by
mistake, and must then find nothing and change nothing) and must leave no copy behind:
SQLite files are rebuilt (:func:`vacuum_sqlite`), rows leave Delta tables file by file
(``delta_rows``), replaced files are vacuumed (:func:`vacuum_delta`), and a table whose old
commits carry statistics on an identifier column has its history folded into one checkpoint
(:func:`forget_delta_history`).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from kirana.identity.rules import Identifier

#: The default log retention Delta uses when a table sets none.
DEFAULT_LOG_RETENTION = "interval 30 days"
LOG_RETENTION = "delta.logRetentionDuration"


@dataclass(frozen=True)
class People:
    """Who is being erased: one person or a whole batch, as one set.

    A batch is one set so that every participant rewrites each of its stores once for
    everybody (a SQLite VACUUM or a Delta rewrite costs the same for one person as for a
    thousand). ``profile_ids`` is empty when only identifiers are left (a repeated
    erasure, or a person known only from quarantined or unprocessed events).
    """

    profile_ids: tuple[str, ...]
    identities: tuple[Identifier, ...]

    @property
    def values(self) -> list[str]:
        """Every identifier value, and the profile ids (some tables are keyed by them)."""
        return sorted({v for _, v in self.identities} | set(self.profile_ids))

    @property
    def customer_ids(self) -> list[str]:
        """The ids the lake and model outputs key customers by (user id, else anonymous id)."""
        return sorted({v for t, v in self.identities if t in ("user_id", "anonymous_id")})

    @property
    def user_keys(self) -> list[str]:
        """Keys of the personalise API and its frequency caps (``u:<user>`` / ``a:<anon>``)."""
        keys = {f"u:{v}" for t, v in self.identities if t == "user_id"}
        return sorted(keys | {f"a:{v}" for t, v in self.identities if t == "anonymous_id"})


#: Erase ``people`` from one subsystem; returns counts per store (rows, files, keys).
Participant = Callable[[People], dict[str, int]]


_REWRITES: ContextVar[Counter[str] | None] = ContextVar("erasure_rewrites", default=None)


@contextmanager
def counting_rewrites() -> Iterator[Counter[str]]:
    """Count the store rewrites (``"<operation> <path>"``) made in this block.

    The price of an erasure is its rewrites (a VACUUM, a Delta file rewrite); a batch must
    make each once, and the erasure report shows that it did.
    """
    counter: Counter[str] = Counter()
    token = _REWRITES.set(counter)
    try:
        yield counter
    finally:
        _REWRITES.reset(token)


def note_rewrite(operation: str, store: Path | str) -> None:
    """Record one rewrite of ``store`` in the enclosing :func:`counting_rewrites`, if any."""
    counter = _REWRITES.get()
    if counter is not None:
        counter[f"{operation} {store}"] += 1


class ErasureIncomplete(RuntimeError):
    """Some participants failed; the message names them. Running the erasure again resumes."""


def run_participants(
    participants: list[tuple[str, Participant]], people: People
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Run every participant (a failure does not stop the others): (counts, errors) by name."""
    counts: dict[str, dict[str, int]] = {}
    errors: dict[str, str] = {}
    for name, erase in participants:
        try:
            counts[name] = erase(people)
        except Exception as exc:  # reported; the caller raises ErasureIncomplete
            errors[name] = f"{type(exc).__name__}: {exc}"
    return counts, errors


def vacuum_sqlite(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Rebuild a SQLite file so no free page or WAL frame keeps deleted rows.

    ``secure_delete`` alone is not enough: rows updated or deleted earlier without it left
    their bytes in free space. VACUUM writes a fresh file; the TRUNCATE checkpoints fold the
    WAL into it and cut the WAL to zero bytes (retried while another connection reads).
    """
    note_rewrite("vacuum", conn.execute("PRAGMA database_list").fetchone()[2])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    for _ in range(attempts):
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if not busy:
            return
        time.sleep(0.1)
    raise RuntimeError("another connection kept reading; the SQLite WAL could not be emptied")


def vacuum_sqlite_file(path: Path) -> None:
    """:func:`vacuum_sqlite` on a file of another component, through a connection of our own."""
    if not path.exists():
        return
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        vacuum_sqlite(conn)
    finally:
        conn.close()


def vacuum_delta(path: Path) -> None:
    """Delete every file of a Delta table that its current version does not use.

    A *full* vacuum with no retention: files replaced by older commits (compaction, earlier
    runs) go too, not only those tombstoned since the last checkpoint. Call it while no
    writer of the table can have written a file it has not committed yet (its lock held).
    """
    if (path / "_delta_log").is_dir():
        note_rewrite("vacuum", path)
        DeltaTable(path).vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True
        )


def forget_delta_history(path: Path) -> None:
    """:func:`vacuum_delta`, then fold the table's commit log into one checkpoint.

    For tables whose old commits name people: per-file min/max statistics on an identifier
    column outlive the rows. Log retention is set to zero only for the clean-up, then put
    back, so the table's settings are unchanged. The price: time travel (and an incremental
    warehouse export) cannot reach versions before the erasure.
    """
    if not (path / "_delta_log").is_dir():
        return
    vacuum_delta(path)
    previous = DeltaTable(path).metadata().configuration.get(LOG_RETENTION)
    zero = {LOG_RETENTION: "interval 0 seconds"}
    _retrying(lambda: DeltaTable(path).alter.set_table_properties(zero))
    table = DeltaTable(path)
    table.create_checkpoint()
    table.cleanup_metadata()
    restored = {LOG_RETENTION: previous or DEFAULT_LOG_RETENTION}
    _retrying(lambda: DeltaTable(path).alter.set_table_properties(restored))


def _retrying(fn, attempts: int = 10):
    for attempt in range(attempts):
        try:
            return fn()
        except CommitFailedError:  # another writer committed meanwhile: redo on its version
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    return None
