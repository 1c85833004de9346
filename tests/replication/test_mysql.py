"""MariaDB replication against our own server with binlog_format=ROW."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from kirana.lake.catalog import connect
from kirana.replication.lake import changes_since, table_path
from kirana.replication.mysql import encode_position
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def _replicator(tmp_path: Path, definition: dict) -> Replicator:
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(definition)
    state.add(config)
    return Replicator(config, tmp_path / "lake", state, wait_seconds=0.2)


def _lake(tmp_path: Path, sql: str) -> list[tuple]:
    return connect(tmp_path / "lake").sql(sql).fetchall()


def test_positions_order_across_binlog_files() -> None:
    assert encode_position("binlog.000001", 4_000_000) < encode_position("binlog.000002", 4)
    assert encode_position("binlog.000002", 5) > encode_position("binlog.000002", 4)


def test_snapshot_stream_deletes_added_columns_truncate(mariadb_server, tmp_path):
    db = mariadb_server
    db.sql("DROP TABLE IF EXISTS products")
    db.sql(
        "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, name TEXT, price DECIMAL(8,2),"
        " stock INT UNSIGNED, added DATETIME, tags JSON)"
    )
    for i in range(30):
        db.sql(
            "INSERT INTO products VALUES (%s, %s, %s, %s, '2024-05-01 10:00:00', %s)",
            f"s{i}",
            f"product {i}",
            Decimal(i) + Decimal("0.99"),
            i * 10,
            '{"a": 1}',
        )
    replicator = _replicator(
        tmp_path,
        {"kind": "mysql", "name": "shop", "dsn": db.url, "tables": [{"name": "products"}]},
    )
    assert replicator.run().snapshot_rows == 30
    path = table_path(tmp_path / "lake", "shop", "products")
    from deltalake import DeltaTable

    after_snapshot = DeltaTable(path).version()
    db.sql("UPDATE products SET price = 1.00 WHERE sku IN ('s1', 's2')")
    db.sql("DELETE FROM products WHERE sku = 's3'")
    db.sql("ALTER TABLE products ADD COLUMN colour VARCHAR(10)")
    db.sql("INSERT INTO products (sku, name, colour) VALUES ('s99', 'new', 'red')")
    db.sql("UPDATE products SET sku = 's100' WHERE sku = 's4'")
    report = replicator.run()
    assert report.rows >= 5
    expected = db.sql("SELECT sku, name, price, stock, colour FROM products ORDER BY sku")
    got = _lake(tmp_path, "SELECT sku, name, price, stock, colour FROM shop_products ORDER BY sku")
    assert got == [tuple(r) for r in expected]
    feed = changes_since(path, after_snapshot)
    pairs = set(zip(feed["_change_type"].to_pylist(), feed["sku"].to_pylist(), strict=True))
    assert pairs == {
        ("update_postimage", "s1"),
        ("update_postimage", "s2"),
        ("delete", "s3"),
        ("delete", "s4"),
        ("insert", "s99"),
        ("insert", "s100"),
    }
    db.sql("TRUNCATE TABLE products")
    db.sql("INSERT INTO products (sku, name) VALUES ('only', 'one')")
    replicator.run()
    assert _lake(tmp_path, "SELECT sku FROM shop_products") == [("only",)]


def test_kill_9_mid_stream_loses_and_doubles_nothing(mariadb_server, tmp_path):
    db = mariadb_server
    db.sql("DROP TABLE IF EXISTS ledger")
    db.sql("CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20))")
    db.sql("INSERT INTO ledger (note) VALUES ('before')")
    data = tmp_path / "data"
    env = {**os.environ, "KIRANA_DATA_DIR": str(data)}
    added = subprocess.run(
        [*KIRANA, "sources", "add-mysql", "crash", "--dsn", db.url, "--table", "ledger"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    follower = subprocess.Popen(
        [*KIRANA, "sources", "sync", "crash", "--follow", "--max-rows", "100"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = ReplicationState(data / "state")
    _wait_for(lambda: state.progress("crash").snapshot_done, "the snapshot")
    conn = db.connect("kirana")
    with conn.cursor() as cur:
        for i in range(600):
            cur.execute("INSERT INTO ledger (note) VALUES (%s)", (f"n{i}",))
            if i == 300:
                _wait_for(lambda: state.progress("crash").rows_applied > 1, "streamed rows")
                follower.send_signal(signal.SIGKILL)
                follower.wait()
    conn.close()
    assert follower.returncode == -signal.SIGKILL
    assert state.progress("crash").rows_applied < 601, "the follower saw everything before the kill"
    finished = subprocess.run(
        [*KIRANA, "sources", "sync", "crash"], env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    lake = data / "lake"
    assert connect(lake).sql(
        "SELECT count(*), count(DISTINCT id) FROM crash_ledger"
    ).fetchall() == [(601, 601)]
    feed = changes_since(table_path(lake, "crash", "ledger"), -1)
    ids = feed["id"].to_pylist()
    assert set(feed["_change_type"].to_pylist()) == {"insert"}
    assert len(ids) == len(set(ids)) == 601


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
