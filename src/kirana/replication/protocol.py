"""The one interface every replication backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from kirana.replication.changes import ChangeSet, TableSpec


@dataclass
class Snapshot:
    """A consistent copy of every table, and the source position it is consistent with.

    Streaming resumes right after ``position``: nothing is lost or doubled
    between the copy and the stream.
    """

    position: int
    checkpoint: dict
    tables: Iterator[tuple[str, pa.RecordBatchReader]]
    """(lake table name, rows with ``_kirana_seq``), one table at a time."""


class ReplicationSource(Protocol):
    """A database or folder whose changes Kirana copies into the lake."""

    name: str

    def tables(self) -> list[TableSpec]:
        """The lake tables this source feeds, with their keys (after connecting)."""
        ...

    def needs_snapshot(self) -> bool:
        """Whether the source must copy its tables before streaming (the first run)."""
        ...

    def snapshot(self) -> Snapshot:
        """Copy every table consistently with the position streaming starts from."""
        ...

    def read(self, max_rows: int, wait_seconds: float) -> ChangeSet | None:
        """Whole transactions after the last confirmed position, or None when caught up.

        Waits up to ``wait_seconds`` for something to arrive.
        """
        ...

    def confirm(self, changes: ChangeSet) -> None:
        """Every table has committed ``changes``: the source may forget them."""
        ...

    def close(self) -> None: ...
