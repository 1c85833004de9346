"""Incremental export of lake tables into a PostgreSQL schema, and every table by name in SQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from kirana.lake.catalog import connect, lake_tables
from kirana.lake.loader import LakeLoader
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator
from kirana.warehouse.export import export_tables

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
runner = CliRunner()


@pytest.fixture
def settings(tmp_path: Path):
    """The server's own replication job stays off here: these tests sync by hand."""
    from kirana.config import load_settings

    return load_settings(
        tmp_path / "data", lake={"linger_seconds": 0.2}, replication={"run_in_serve": False}
    )


@pytest.fixture
def warehouse():
    """A fresh schema in the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    try:
        conn = psycopg.connect(POSTGRES_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc})")
    schema = f"wh_{uuid.uuid4().hex[:8]}"
    try:
        yield conn, schema
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def _drop(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def _nps(tmp_path: Path) -> tuple[Replicator, Path]:
    folder = tmp_path / "drops"
    folder.mkdir()
    state = ReplicationState(tmp_path / "data" / "state")
    config = parse_source_config(
        {
            "kind": "files",
            "name": "nps",
            "path": str(folder),
            "format": "csv",
            "table": "scores",
            "key": ["respondent"],
            "precombine": "answered",
            "delete_column": "withdrawn",
            "settle_seconds": 0,
        }
    )
    state.add(config)
    return Replicator(config, tmp_path / "data" / "lake", state, wait_seconds=0), folder


@pytest.mark.server
def test_replicated_table_exports_incrementally_with_deletes_and_new_columns(tmp_path, warehouse):
    conn, schema = warehouse
    replicator, folder = _nps(tmp_path)
    lake = tmp_path / "data" / "lake"
    _drop(folder, "a.csv", "respondent,score,answered\n1,9,1\n2,3,1\n3,7,1\n")
    replicator.run()
    first = export_tables(lake, POSTGRES_DSN, schema, ["nps_scores"])
    assert first["nps_scores"]["mode"] == "full" and first["nps_scores"]["rows"] == 3

    time.sleep(0.01)
    _drop(
        folder,
        "b.csv",
        "respondent,score,answered,withdrawn,channel\n1,10,2,,email\n2,0,5,true,\n4,8,1,,sms\n",
    )
    replicator.run()
    second = export_tables(lake, POSTGRES_DSN, schema, ["nps_scores"])
    assert second["nps_scores"]["mode"] == "change_feed"
    assert second["nps_scores"]["rows"] == 3  # one update, one insert, one delete
    exported = conn.execute(
        f'SELECT respondent, score, channel FROM "{schema}".nps_scores ORDER BY 1'
    ).fetchall()
    in_lake = connect(lake).sql("SELECT respondent, score, channel FROM nps_scores ORDER BY 1")
    assert exported == in_lake.fetchall() == [(1, 10, "email"), (3, 7, None), (4, 8, "sms")]
    again = export_tables(lake, POSTGRES_DSN, schema, ["nps_scores"])
    assert again["nps_scores"] == {
        "mode": "unchanged",
        "version": second["nps_scores"]["version"],
        "rows": 0,
    }
    state = conn.execute(
        f'SELECT table_name, delta_version FROM "{schema}"._kirana_exports'
    ).fetchall()
    assert state == [("nps_scores", second["nps_scores"]["version"])]


def _events(lake_dir: Path, state_dir: Path, log: FileEventLog, ids: range) -> None:
    log.append_sync(
        [
            event_record(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "messageId": f"m{i}",
                    "userId": f"u{i % 7}",
                    "timestamp": datetime(2026, 11, 1 + i % 3, 12, tzinfo=UTC).isoformat(),
                    "receivedAt": datetime(2026, 11, 1 + i % 3, 12, tzinfo=UTC).isoformat(),
                    "sourceId": "s",
                    "properties": {"total": i},
                }
            )
            for i in ids
        ]
    )
    loader = LakeLoader(log, lake_dir, state_dir)
    result = log.read(loader.position(), 100_000)
    loader.handle(result.records, result.next_offset)
    return loader


@pytest.mark.server
def test_events_export_by_version_diff_survives_compaction(tmp_path, warehouse):
    conn, schema = warehouse
    lake, state = tmp_path / "lake", tmp_path / "state"
    log = FileEventLog(tmp_path / "log")
    try:
        _events(lake, state, log, range(0, 40))
        keys = {"events": ["message_id"]}
        first = export_tables(lake, POSTGRES_DSN, schema, ["events"], keys=keys)
        assert first["events"]["mode"] == "full" and first["events"]["rows"] == 40
        loader = _events(lake, state, log, range(40, 55))
        loader.compact()  # rewrites files without changing data: not a change to export
        second = export_tables(lake, POSTGRES_DSN, schema, ["events"], keys=keys)
        assert second["events"]["mode"] == "version_diff" and second["events"]["rows"] == 15
    finally:
        log.close()
    exported = conn.execute(
        f'SELECT count(*), count(DISTINCT message_id), min(event_date)::text FROM "{schema}".events'
    ).fetchone()
    assert exported == (55, 55, "2026-11-01")


def test_every_lake_table_is_queryable_together_by_name(tmp_path):
    replicator, folder = _nps(tmp_path)
    _drop(folder, "a.csv", "respondent,score,answered\nu1,9,1\nu2,3,1\n")
    replicator.run()
    lake = tmp_path / "data" / "lake"
    log = FileEventLog(tmp_path / "data" / "log")
    try:
        _events(lake, tmp_path / "data" / "state", log, range(0, 14))
    finally:
        log.close()
    assert {"events", "nps_scores"} <= set(lake_tables(lake))
    result = runner.invoke(
        app,
        [
            "sql",
            "SELECT s.respondent, s.score, count(e.message_id) AS orders FROM nps_scores s"
            " JOIN events e ON e.user_id = s.respondent GROUP BY 1, 2 ORDER BY 1",
            "--format",
            "json",
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows == [
        {"respondent": "u1", "score": 9, "orders": 2},
        {"respondent": "u2", "score": 3, "orders": 2},
    ]


@pytest.mark.server
@pytest.mark.slow
def test_export_through_the_cli_and_the_api(kirana, tmp_path, warehouse):
    conn, schema = warehouse
    data = kirana.settings.data_dir
    drops = tmp_path / "drops"
    drops.mkdir()
    _drop(drops, "a.csv", "sku,stock\nA,1\nB,2\n")
    added = runner.invoke(
        app,
        [
            "sources",
            "add-files",
            "inv",
            "--path",
            str(drops),
            "--format",
            "csv",
            "--key",
            "sku",
            "--settle-seconds",
            "0",
            "--data-dir",
            str(data),
        ],
    )
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["sources", "sync", "inv", "--data-dir", str(data)]).exit_code == 0
    exported = runner.invoke(
        app,
        [
            "warehouse",
            "export",
            "--dsn",
            POSTGRES_DSN,
            "--schema",
            schema,
            "--table",
            "inv_data",
            "--data-dir",
            str(data),
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout.strip().splitlines()[-1])["inv_data"]["rows"] == 2
    unknown = runner.invoke(
        app,
        ["warehouse", "export", "--dsn", POSTGRES_DSN, "--table", "nope", "--data-dir", str(data)],
    )
    assert unknown.exit_code == 1 and "no lake table(s) ['nope']" in unknown.output
    _drop(drops, "b.csv", "sku,stock\nB,20\n")
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        assert http.post("/v1/replication/sources/inv/sync", headers=admin).json()["rows"] == 1
        answer = http.post(
            "/v1/warehouse/export",
            json={"dsn": POSTGRES_DSN, "schema_name": schema, "tables": ["inv_data"]},
            headers=admin,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["inv_data"]["mode"] == "change_feed"
        no_dsn = http.post("/v1/warehouse/export", json={"tables": ["inv_data"]}, headers=admin)
        assert no_dsn.status_code == 422 and "dsn" in no_dsn.json()["message"]
    rows = conn.execute(f'SELECT sku, stock FROM "{schema}".inv_data ORDER BY 1').fetchall()
    assert rows == [("A", 1), ("B", 20)]


@pytest.mark.server
def test_a_rewritten_table_exports_its_final_rows(tmp_path, warehouse):
    """A snapshot or truncate rewrites the table: deletes and inserts of one key in one commit."""
    import pyarrow as pa

    from kirana.replication.changes import TableSpec
    from kirana.replication.lake import ReplicatedTable

    conn, schema = warehouse
    lake = tmp_path / "lake"
    table = ReplicatedTable(lake, "erp", TableSpec("stock", ("sku",)))
    table.replace(pa.table({"sku": ["a", "b"], "n": [1, 2], "_kirana_seq": [1, 1]}), 1)
    export_tables(lake, POSTGRES_DSN, schema, ["erp_stock"])
    table.replace(pa.table({"sku": ["b", "c"], "n": [20, 30], "_kirana_seq": [5, 5]}), 5)
    report = export_tables(lake, POSTGRES_DSN, schema, ["erp_stock"])
    assert report["erp_stock"]["mode"] == "change_feed"
    rows = conn.execute(f'SELECT sku, n FROM "{schema}".erp_stock ORDER BY 1').fetchall()
    assert rows == [("b", 20), ("c", 30)]
