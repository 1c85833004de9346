"""The decision spool: every API process's batches reach the decisions table once,
whoever appends them and whenever an append dies (kill -9 between its commit and deleting
its files included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from kirana.serving.decision_log import SCHEMA, DecisionLog, table_path, table_writer
from kirana.serving.decision_spool import DecisionSpool, SpoolFull, backlog
from tests.serving.test_decision_log import row


def batch(ids: range) -> pa.Table:
    """Decision rows ``ids`` as the log encodes them (through a log that only collects)."""
    tables: list[pa.Table] = []
    log = DecisionLog(Path("/nonexistent"), flush_seconds=3600, writer=tables.append)
    try:
        for i in ids:
            log.append(row(i))
        log.flush()
    finally:
        log.close()
    return tables[0]


def logged_ids(lake: Path) -> list[str]:
    """The table's decision ids, sorted (a Delta table keeps no order across files), with
    any duplicates kept."""
    table = DeltaTable(table_path(lake)).to_pyarrow_table()
    return sorted(table.column("decision_id").to_pylist())


def ids(numbers: range) -> list[str]:
    return [f"{i:016x}" for i in numbers]


def test_every_process_batches_are_appended_once_and_deleted(tmp_path: Path) -> None:
    first, second = (DecisionSpool(tmp_path / "spool", SCHEMA) for _ in range(2))
    first.put(batch(range(0, 3)))
    second.put(batch(range(3, 5)))
    first.put(batch(range(5, 9)))
    writer = table_writer(tmp_path / "lake")
    paths = first.pending()
    assert paths == second.pending() and len(paths) == 3
    assert backlog(tmp_path / "spool") == (3, sum(Path(p).stat().st_size for p in paths))
    assert writer.append_spooled(paths) == 9
    assert logged_ids(tmp_path / "lake") == ids(range(9))
    assert first.pending() == [] and backlog(tmp_path / "spool") == (0, 0)
    # the same call again (a caller that timed out while it ran): nothing twice
    assert writer.append_spooled(paths) == 0
    assert logged_ids(tmp_path / "lake") == ids(range(9))
    assert len(DeltaTable(table_path(tmp_path / "lake")).history()) == 1  # one commit


def test_a_partial_file_is_never_read(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path, SCHEMA)
    (tmp_path / ".00000000000000000001-1-000000.partial").write_bytes(b"half a file")
    written = spool.put(batch(range(2)))
    assert spool.pending() == [str(written)]


def test_a_batch_of_another_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    with pytest.raises(ValueError, match="decisions schema"):
        spool.put(pa.table({"decision_id": ["x"]}))
    stray = tmp_path / "spool" / "00000000000000000001-1-000000.arrow"
    with (
        pa.OSFile(str(stray), "wb") as sink,
        pa.ipc.new_file(sink, pa.schema([("x", pa.int8())])) as out,
    ):
        out.write_table(pa.table({"x": pa.array([1], pa.int8())}))
    with pytest.raises(ValueError, match=stray.name):
        table_writer(tmp_path / "lake").append_spooled(spool.pending())
    assert stray.exists()  # left for an operator to look at, not deleted unread


CRASH_AFTER_COMMIT = """
import os, signal, sys
from pathlib import Path
from kirana.serving import decision_spool
from kirana.serving.decision_log import SCHEMA, table_writer

def killed(path):  # kill -9 right after the commit, before any file is deleted
    os.kill(os.getpid(), signal.SIGKILL)

decision_spool.os.unlink = killed
spool = decision_spool.DecisionSpool(Path(sys.argv[1]), SCHEMA)
table_writer(Path(sys.argv[2])).append_spooled(spool.pending())
"""


def test_kill_9_between_commit_and_delete_appends_nothing_twice(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    spool.put(batch(range(0, 4)))
    spool.put(batch(range(4, 6)))
    lake = tmp_path / "lake"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT, str(tmp_path / "spool"), str(lake)],
        capture_output=True,
        text=True,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert logged_ids(lake) == ids(range(6))  # committed ...
    assert len(spool.pending()) == 2  # ... and still spooled
    spool.put(batch(range(6, 8)))  # more came while the writer was down
    restarted = table_writer(lake)  # a new worker process
    assert restarted.append_spooled(spool.pending()) == 2
    assert logged_ids(lake) == ids(range(8))  # each decision once
    assert spool.pending() == []


def test_the_commit_records_the_files_it_took(tmp_path: Path) -> None:
    """What the restart above relies on: without the record it would append twice."""
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    path = spool.put(batch(range(3)))
    table_writer(tmp_path / "lake").append_spooled([str(path)])
    (commit,) = DeltaTable(table_path(tmp_path / "lake")).history(1)
    assert commit["kirana.decision_spool"] == [path.name]


def test_a_log_that_only_spools_reaches_the_table_through_one_that_collects(
    tmp_path: Path,
) -> None:
    """An extra API process spools; the first one's flush has everything appended, even
    when it has made no decision itself."""
    lake, spool_dir = tmp_path / "lake", tmp_path / "spool"
    writer = table_writer(lake)
    spool = DecisionSpool(spool_dir, SCHEMA)
    extra = DecisionLog(lake, flush_seconds=3600, writer=DecisionSpool(spool_dir, SCHEMA).put)
    first = DecisionLog(
        lake,
        flush_seconds=3600,
        writer=spool.put,
        collect=lambda: writer.append_spooled(spool.pending()),
    )
    try:
        for i in range(5):
            extra.append(row(i))
        assert extra.flush() == 5
        assert not table_path(lake).exists()  # spooled, not appended
        assert first.flush() == 0  # nothing of its own ...
        assert logged_ids(lake) == ids(range(5))  # ... but the spool is in the table
        for i in range(5, 7):
            first.append(row(i))
        assert first.flush() == 2
        assert logged_ids(lake) == ids(range(7))
    finally:
        extra.close()
        first.close()
    assert spool.pending() == []


def test_spool_files_carry_only_the_decisions_schema(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path, SCHEMA)
    path = spool.put(batch(range(2)))
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    assert table.schema == SCHEMA
    assert [json.loads(d)["decision_id"] for d in table.column("decision").to_pylist()] == ids(
        range(2)
    )
    assert os.path.basename(path).endswith(".arrow")


def test_a_full_spool_refuses_batches_until_they_are_appended(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA, max_bytes=1, measure_seconds=0)
    first = spool.put(batch(range(0, 3)))
    with pytest.raises(SpoolFull, match="decision_spool_max_mb"):
        spool.put(batch(range(3, 5)))
    assert spool.pending() == [str(first)]  # nothing written for the refused batch
    assert table_writer(tmp_path / "lake").append_spooled(spool.pending()) == 3
    spool.put(batch(range(5, 6)))  # room again once appended
    assert len(spool.pending()) == 1


def test_another_process_files_count_towards_the_limit(tmp_path: Path) -> None:
    other = DecisionSpool(tmp_path / "spool", SCHEMA)
    other.put(batch(range(0, 20)))
    size = backlog(tmp_path / "spool")[1]
    ours = DecisionSpool(tmp_path / "spool", SCHEMA, max_bytes=size, measure_seconds=0)
    with pytest.raises(SpoolFull):
        ours.put(batch(range(20, 21)))
    roomy = DecisionSpool(tmp_path / "spool", SCHEMA, max_bytes=size + 1, measure_seconds=0)
    roomy.put(batch(range(20, 21)))


def test_the_log_counts_refused_decisions_as_dropped_and_goes_on(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA, max_bytes=1, measure_seconds=0)
    log = DecisionLog(tmp_path / "lake", flush_seconds=3600, writer=spool.put)
    try:
        for i in range(4):
            log.append(row(i))
        assert log.flush() == 4
        for i in range(4, 7):
            log.append(row(i))
        assert log.flush() == 0  # refused: dropped, not queued again
        assert (log.written, log.dropped, log.queued) == (4, 3, 0)
        assert log.last_error is not None and "decision_spool_max_mb" in log.last_error
        table_writer(tmp_path / "lake").append_spooled(spool.pending())
        log.append(row(7))
        assert log.flush() == 1
    finally:
        log.close()
    assert logged_ids(tmp_path / "lake") == ids(range(4))
    assert backlog(tmp_path / "spool")[0] == 1  # row 7, spooled
