"""The decision spool: every API process's batches reach the decisions table once,
whoever appends them and whenever an append dies (kill -9 between its commit and deleting
its files included)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from kirana.serving.decision_log import SCHEMA, DecisionLog, table_path, table_writer
from kirana.serving.decision_spool import DecisionSpool, SpoolFull, backlog, rejected
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


def write_foreign(path: Path) -> None:
    """An Arrow file that is not a decisions batch (another version's, say)."""
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, pa.schema([("x", pa.int8())])) as out,
    ):
        out.write_table(pa.table({"x": pa.array([1], pa.int8())}))


def test_a_batch_of_another_schema_is_refused_by_put(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    with pytest.raises(ValueError, match="decisions schema"):
        spool.put(pa.table({"decision_id": ["x"]}))
    assert spool.pending() == [] and list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize("damage", ["foreign schema", "cut short", "not arrow"])
def test_a_file_that_is_not_a_batch_is_set_aside_and_the_rest_appended(
    tmp_path: Path, damage: str
) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    spool.put(batch(range(0, 2)))
    bad = tmp_path / "spool" / "00000000000000000001-1-000000.arrow"  # sorts first
    if damage == "foreign schema":
        write_foreign(bad)
    elif damage == "cut short":  # what a power loss can leave: the data not all on disk
        whole = Path(spool.put(batch(range(9, 12))))
        bad.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        whole.unlink()
    else:
        bad.write_bytes(b"half a file")
    spool.put(batch(range(2, 5)))
    paths = spool.pending()
    assert paths[0] == str(bad) and len(paths) == 3
    assert table_writer(tmp_path / "lake").append_spooled(paths) == 5
    assert logged_ids(tmp_path / "lake") == ids(range(5))
    assert spool.pending() == []
    assert rejected(tmp_path / "spool") == 1  # kept for an operator to look at
    assert (tmp_path / "spool" / "rejected" / bad.name).exists()


def test_a_failed_compaction_appends_nothing_twice(tmp_path: Path, monkeypatch) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    writer = table_writer(tmp_path / "lake", compact_every=1)
    attempts = []

    def broken() -> None:
        attempts.append(1)
        raise OSError("disk full while compacting")

    monkeypatch.setattr(writer, "compact", broken)
    spool.put(batch(range(0, 3)))
    assert writer.append_spooled(spool.pending()) == 3  # committed; compaction failed
    assert attempts == [1] and spool.pending() == []
    spool.put(batch(range(3, 5)))
    assert writer.append_spooled(spool.pending()) == 2
    assert attempts == [1, 1]  # tried again, still no rows twice
    assert logged_ids(tmp_path / "lake") == ids(range(5))


def test_a_call_while_an_append_runs_returns_at_once(tmp_path: Path) -> None:
    """A caller that timed out calls again; its thread must not wait behind the first."""
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    spool.put(batch(range(0, 3)))
    writer = table_writer(tmp_path / "lake")
    with writer._lock:  # an append in progress
        assert writer.append_spooled(spool.pending()) == 0
    assert len(spool.pending()) == 1  # untouched: the next flush takes it
    assert writer.append_spooled(spool.pending()) == 3


def test_pending_in_bounded_steps_oldest_first(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)
    paths = [str(spool.put(batch(range(i * 3, i * 3 + 3)))) for i in range(4)]
    size = Path(paths[0]).stat().st_size
    assert spool.pending(max_bytes=2 * size) == paths[:2]
    assert spool.pending(max_bytes=1) == paths[:1]  # always at least one
    assert spool.pending(max_bytes=10 * size) == paths


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    spool = DecisionSpool(tmp_path / "spool", SCHEMA)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pa.ipc, "new_file", no_space)
    with pytest.raises(OSError, match="No space"):
        spool.put(batch(range(2)))
    assert list((tmp_path / "spool").iterdir()) == []


def test_partials_of_dead_writers_are_removed_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    old = directory / ".00000000000000000001-1-000000.partial"
    fresh = directory / ".00000000000000000002-2-000000.partial"
    for partial in (old, fresh):
        partial.write_bytes(b"half a file")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    DecisionSpool(directory, SCHEMA)
    assert not old.exists()
    assert fresh.exists()  # maybe another process's write in flight


def test_the_spool_is_appended_even_when_this_process_cannot_write(tmp_path: Path) -> None:
    """The first process's own batch failing (a full disk) must not hold up the others'."""
    collected = []

    def failing(table: pa.Table) -> None:
        raise OSError(28, "No space left on device")

    log = DecisionLog(
        tmp_path, flush_seconds=3600, writer=failing, collect=lambda: collected.append(1)
    )
    try:
        log.append(row(1))
        with pytest.raises(OSError):
            log.flush()
        assert collected == [1] and log.queued == 1  # kept for the next flush
    finally:
        log._writer = lambda table: None
        log.close()


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
