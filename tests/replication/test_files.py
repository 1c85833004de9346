"""File drops: each file once, partial files left alone, bad files set aside, precombine order."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.lake.catalog import connect
from kirana.replication.files import FileDropSource
from kirana.replication.lake import ReplicatedTable, changes_since, table_path
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

runner = CliRunner()


@pytest.fixture
def drops(tmp_path: Path) -> Path:
    folder = tmp_path / "drops"
    folder.mkdir()
    return folder


def _source(tmp_path: Path, drops: Path, **extra) -> tuple[Replicator, ReplicationState]:
    state = ReplicationState(tmp_path / "state")
    definition = {
        "kind": "files",
        "name": "nps",
        "path": str(drops),
        "format": "csv",
        "key": ["id"],
        "precombine": "answered_at",
        "delete_column": "deleted",
        "settle_seconds": 0,
        **extra,
    }
    config = parse_source_config(definition)
    state.add(config)
    return Replicator(config, tmp_path / "lake", state, wait_seconds=0), state


def _rows(tmp_path: Path) -> list[tuple]:
    return connect(tmp_path / "lake").sql("SELECT id, score FROM nps_data ORDER BY id").fetchall()


def _drop(folder: Path, name: str, text: str, age: float = 0.0) -> Path:
    path = folder / name
    path.write_text(text)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def test_each_file_applies_once_and_duplicates_are_skipped(tmp_path, drops):
    replicator, state = _source(tmp_path, drops)
    _drop(drops, "a.csv", "id,score,answered_at\n1,5,1\n2,7,1\n", age=2)
    assert replicator.run().rows == 2
    assert replicator.run().rows == 0  # nothing new: nothing applied
    _drop(drops, "copy-of-a.csv", "id,score,answered_at\n1,5,1\n2,7,1\n")
    assert replicator.run().rows == 0
    records = {f.name: (f.state, f.reason) for f in state.files("nps")}
    assert records["a.csv"] == ("applied", None)
    assert records["copy-of-a.csv"][0] == "duplicate" and "a.csv" in records["copy-of-a.csv"][1]
    feed = changes_since(table_path(tmp_path / "lake", "nps", "data"), -1)
    assert sorted(feed["id"].to_pylist()) == [1, 2]


def test_partial_files_wait_until_complete(tmp_path, drops):
    replicator, state = _source(tmp_path, drops, settle_seconds=30)
    _drop(drops, "big.csv.part", "id,score,answered_at\n1,5,1\n", age=60)
    _drop(drops, ".hidden.csv", "id,score,answered_at\n2,5,1\n", age=60)
    fresh = _drop(drops, "fresh.csv", "id,score,answered_at\n3,5,1\n")  # still being written?
    assert replicator.run().rows == 0 and state.files("nps") == []
    (drops / "big.csv.part").rename(drops / "big.csv")  # the writer renames it in when done
    then = time.time() - 60
    os.utime(fresh, (then, then))  # and the other one stopped changing long ago
    assert replicator.run().rows == 2
    assert _rows(tmp_path) == [(1, 5), (3, 5)]


def test_bad_files_are_moved_aside_with_the_reason(tmp_path, drops):
    replicator, state = _source(tmp_path, drops)
    _drop(drops, "a.csv", "id,score,answered_at\n1,5,1\n", age=3)
    _drop(drops, "no-key.csv", "respondent,score\n1,5\n", age=2)
    _drop(drops, "wrong-type.csv", "id,score,answered_at\n2,lots,1\n", age=1)
    _drop(drops, "notes.txt", "hello")
    replicator.run()
    assert _rows(tmp_path) == [(1, 5)]
    aside = drops / "_rejected"
    assert sorted(p.name for p in aside.iterdir()) == [
        "no-key.csv",
        "no-key.csv.reason.txt",
        "notes.txt",
        "notes.txt.reason.txt",
        "wrong-type.csv",
        "wrong-type.csv.reason.txt",
    ]
    assert (
        "missing column(s) ['id', 'answered_at']" in (aside / "no-key.csv.reason.txt").read_text()
    )
    assert "column 'score'" in (aside / "wrong-type.csv.reason.txt").read_text()
    rejected = {f.name: f.reason for f in state.files("nps") if f.state == "rejected"}
    assert set(rejected) == {"no-key.csv", "wrong-type.csv", "notes.txt"}


def test_precombine_keeps_the_newest_version_whatever_the_arrival_order(tmp_path, drops):
    replicator, _ = _source(tmp_path, drops)
    _drop(drops, "new.csv", "id,score,answered_at\n1,9,20\n2,9,20\n", age=3)
    _drop(drops, "old.csv", "id,score,answered_at\n1,1,10\n2,1,30\n3,1,10\n", age=2)
    _drop(drops, "gone.csv", "id,score,answered_at,deleted\n3,0,40,true\n2,0,5,true\n", age=1)
    replicator.run()
    # 1: the older version arrived later and lost; 2: the later file was newer and won;
    # 3: deleted by a newer delete; 2's delete was older than what the lake holds
    assert _rows(tmp_path) == [(1, 9), (2, 1)]


def test_added_columns_and_other_formats(tmp_path, drops):
    replicator, _ = _source(tmp_path, drops, format="parquet", precombine=None)
    pq.write_table(pa.table({"id": [1, 2], "score": [5, 6]}), drops / "a.parquet")
    os.utime(drops / "a.parquet", (time.time() - 2,) * 2)
    pq.write_table(pa.table({"id": [2], "score": [60], "channel": ["sms"]}), drops / "b.parquet")
    replicator.run()
    lake = connect(tmp_path / "lake")
    assert lake.sql("SELECT id, score, channel FROM nps_data ORDER BY id").fetchall() == [
        (1, 5, None),
        (2, 60, "sms"),
    ]


def test_jsonl_drop_through_the_cli(tmp_path, drops):
    data = tmp_path / "data"
    added = runner.invoke(
        app,
        [
            "sources",
            "add-files",
            "crm",
            "--path",
            str(drops),
            "--format",
            "jsonl",
            "--key",
            "customer_id",
            "--table",
            "exports",
            "--settle-seconds",
            "0",
            "--data-dir",
            str(data),
        ],
    )
    assert added.exit_code == 0, added.output
    _drop(drops, "e.jsonl", '{"customer_id": "c1", "tier": "gold"}\n{"customer_id": "c2"}\n')
    synced = runner.invoke(app, ["sources", "sync", "crm", "--data-dir", str(data)])
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout.strip().splitlines()[-1])["rows"] == 2
    listed = runner.invoke(app, ["sources", "list", "--data-dir", str(data)])
    assert "crm" in listed.output and "files" in listed.output
    status = json.loads(
        runner.invoke(app, ["sources", "status", "crm", "--data-dir", str(data)]).stdout
    )
    assert status["files"][0]["state"] == "applied"
    assert status["tables"]["exports"]["sql_name"] == "crm_exports"
    changes = runner.invoke(
        app, ["sources", "changes", "crm", "exports", "--since", "-1", "--data-dir", str(data)]
    )
    assert sorted(json.loads(line)["customer_id"] for line in changes.stdout.splitlines()) == [
        "c1",
        "c2",
    ]
    bad = runner.invoke(
        app,
        [
            "sources",
            "add-files",
            "Bad Name",
            "--path",
            str(drops),
            "--format",
            "csv",
            "--key",
            "id",
            "--data-dir",
            str(data),
        ],
    )
    assert bad.exit_code == 1 and "`name`" in bad.output


def test_crash_after_the_delta_commit_does_not_apply_the_file_twice(tmp_path, drops):
    replicator, state = _source(tmp_path, drops)
    _drop(drops, "a.csv", "id,score,answered_at\n1,5,1\n")
    source = FileDropSource(replicator.config, state)
    changes = source.read(1000, 0)
    table = ReplicatedTable(tmp_path / "lake", "nps", source.spec)
    table.apply(changes.tables["data"], changes.position)  # committed; then the process dies
    version = table.version()
    assert state.pending_file("nps").name == "a.csv"
    report = replicator.run()  # a restart re-reads the pending file ...
    assert table.version() == version  # ... and the table's txn version says it is there
    assert [f.state for f in state.files("nps")] == ["applied"]
    assert report.batches == 1 and _rows(tmp_path) == [(1, 5)]
