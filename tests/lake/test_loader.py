"""The lake loader on its own: exactly once, recovery, partitions, compaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from deltalake import DeltaTable

from kirana.eventlog.records import event_record, quarantine_record
from kirana.eventlog.segments import FileEventLog
from kirana.lake.catalog import connect
from kirana.lake.loader import APP_ID, LakeLoader


def event(mid: str, day: int = 0, user: str = "u") -> bytes:
    ts = (datetime(2026, 11, 1, 12, tzinfo=UTC) + timedelta(days=day)).isoformat()
    return event_record(
        {
            "type": "track",
            "event": "E",
            "messageId": mid,
            "userId": user,
            "timestamp": ts,
            "receivedAt": ts,
            "sourceId": "s",
            "properties": {"n": mid},
        }
    )


def run_once(log: FileEventLog, loader: LakeLoader) -> None:
    result = log.read(loader.position(), 100_000)
    loader.handle(result.records, result.next_offset)


def ids(lake: Path) -> list[str]:
    return [r[0] for r in connect(lake).sql("SELECT message_id FROM events ORDER BY 1").fetchall()]


def test_duplicates_within_and_across_batches_land_once(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync([event("a"), event("b"), event("a")])
        run_once(log, loader)
        log.append_sync([event("b"), event("c")])
        run_once(log, loader)
        loader.close()
    assert ids(tmp_path / "lake") == ["a", "b", "c"]


def test_quarantine_records_never_reach_the_lake(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync([event("ok"), quarantine_record({"reason": "bad", "raw": "{}"})])
        run_once(log, loader)
        loader.close()
    assert ids(tmp_path / "lake") == ["ok"]


def test_crash_between_delta_commit_and_index_commit_does_not_duplicate(tmp_path: Path) -> None:
    """The table's txn version is ahead of the index: recovery re-learns, writes nothing twice."""
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync([event(f"m{i}") for i in range(50)])
        result = log.read(loader.position())
        rows = loader._project(result.records)
        loader._append(rows, result.next_offset)  # Delta commit done; "crash" before the index
        loader.close()
        assert (
            DeltaTable(tmp_path / "lake" / "events").transaction_version(APP_ID) == log.end_offset
        )

        restarted = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        assert restarted.position() == log.end_offset
        log.append_sync([event("m3"), event("new")])  # a client retry of m3, and a new event
        run_once(log, restarted)
        restarted.close()
    assert ids(tmp_path / "lake") == sorted([f"m{i}" for i in range(50)] + ["new"])


def test_rows_are_typed_and_partitioned_by_event_date(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync([event(f"d{d}", day=d) for d in range(3)])
        run_once(log, loader)
        loader.close()
    table = DeltaTable(tmp_path / "lake" / "events")
    assert table.metadata().partition_columns == ["event_date"]
    partitions = sorted(p["event_date"] for p in table.partitions())
    assert partitions == ["2026-11-01", "2026-11-02", "2026-11-03"]
    row = (
        connect(tmp_path / "lake")
        .sql("SELECT typeof(timestamp), properties->>'$.n' FROM events WHERE message_id = 'd1'")
        .fetchall()
    )
    assert row == [("TIMESTAMP WITH TIME ZONE", "d1")]


def test_compaction_merges_small_files_and_keeps_every_row(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(
            log, tmp_path / "lake", tmp_path / "state", compact_every=1000, vacuum_retention_hours=0
        )
        for batch in range(12):
            log.append_sync([event(f"b{batch}-{i}") for i in range(20)])
            run_once(log, loader)
        before = len(DeltaTable(tmp_path / "lake" / "events").file_uris())
        metrics = loader.compact()
        loader.close()
    table = DeltaTable(tmp_path / "lake" / "events")
    assert before == 12 and len(table.file_uris()) == 1
    assert metrics["numFilesRemoved"] == 12
    assert len(ids(tmp_path / "lake")) == 240
    assert table.transaction_version(APP_ID) is not None  # the txn survives checkpointing
    parquet = list((tmp_path / "lake" / "events").glob("event_date=*/*.parquet"))
    assert len(parquet) == 1, "vacuum removed the replaced files"
