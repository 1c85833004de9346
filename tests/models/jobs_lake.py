"""A small demo lake for the model-job tests: a few Instacart users' orders as events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kirana.demo.instacart import load_histories
from kirana.demo.simulator import simulate
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from kirana.lake.loader import LakeLoader

END = datetime(2026, 1, 1, tzinfo=UTC)
KEPT = {"Order Completed", None}  # orders, plus identify calls (no `event`) for profiles


def demo_events(users: int = 40, first: int = 0) -> list[dict]:
    """The simulator's orders and identify calls for ``users`` real users from ``first``."""
    histories = load_histories()[first : first + users]
    return [e for e in simulate(histories, end=END) if e.get("event") in KEPT]


def load_lake(data_dir: Path, events: list[dict]) -> None:
    """Land ``events`` in ``<data_dir>/lake/events`` through the real log and lake loader."""
    with FileEventLog(data_dir / "log") as log:
        loader = LakeLoader(log, data_dir / "lake", data_dir / "state")
        log.append_sync([event_record(e) for e in events])
        result = log.read(loader.position(), 10**7)
        loader.handle(result.records, result.next_offset)
        loader.close()
