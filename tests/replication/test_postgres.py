"""PostgreSQL replication against a real server with wal_level=logical (our own instance)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from kirana.lake.catalog import connect
from kirana.replication.lake import changes_since, table_path
from kirana.replication.service import remove_source
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def _lake(tmp_path: Path, sql: str) -> list[tuple]:
    return connect(tmp_path / "lake").sql(sql).fetchall()


def _replicator(tmp_path: Path, definition: dict) -> Replicator:
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(definition)
    state.add(config)
    return Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)


def test_snapshot_stream_deletes_added_columns_and_cdf(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS shop_customers")
    pg.sql(
        "CREATE TABLE shop_customers (id int PRIMARY KEY, name text, tier smallint,"
        " credit numeric(10,2), joined timestamptz, active boolean)"
    )
    pg.sql(
        "INSERT INTO shop_customers SELECT g, 'c' || g, g % 3, g * 1.25,"
        " '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour', g % 2 = 0"
        " FROM generate_series(1, 50) g"
    )
    replicator = _replicator(
        tmp_path,
        {"kind": "postgres", "name": "shop", "dsn": pg.dsn, "tables": [{"name": "shop_customers"}]},
    )
    report = replicator.run()
    assert report.snapshot_rows == 50
    rows = _lake(
        tmp_path, "SELECT id, name, tier, credit, active FROM shop_shop_customers ORDER BY id"
    )
    assert rows[0] == (1, "c1", 1, Decimal("1.25"), False)
    assert len(rows) == 50
    version = replicator_version = table_path(tmp_path / "lake", "shop", "shop_customers")
    snapshot_version = _delta_version(version)

    pg.sql("UPDATE shop_customers SET name = 'renamed' WHERE id <= 5")
    pg.sql("DELETE FROM shop_customers WHERE id BETWEEN 46 AND 50")
    pg.sql("ALTER TABLE shop_customers ADD COLUMN email text")
    pg.sql("INSERT INTO shop_customers (id, name, email) VALUES (51, 'new', 'n@example.com')")
    pg.sql("UPDATE shop_customers SET email = 'one@example.com' WHERE id = 1")
    report = replicator.run()
    assert report.rows == 12 and report.snapshot_rows == 0

    expected = pg.sql("SELECT id, name, email FROM shop_customers ORDER BY id")
    assert (
        _lake(tmp_path, "SELECT id, name, email FROM shop_shop_customers ORDER BY id") == expected
    )

    changes = changes_since(replicator_version, snapshot_version)
    kinds = list(zip(changes["_change_type"].to_pylist(), changes["id"].to_pylist(), strict=True))
    # id 1 changed twice: one update, or two if the stream was applied in two commits
    assert set(kinds) == {
        *[("update_postimage", i) for i in range(1, 6)],
        *[("delete", i) for i in range(46, 51)],
        ("insert", 51),
    }
    assert len(kinds) in (11, 12)
    assert changes_since(replicator_version, _delta_version(replicator_version)).num_rows == 0


def _delta_version(path: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()


def test_snapshot_under_concurrent_writes_neither_loses_nor_doubles(postgres_server, tmp_path):
    """Rows written while the snapshot is copied land exactly once: in the copy or the stream."""
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS busy_orders")
    pg.sql("CREATE TABLE busy_orders (id bigserial PRIMARY KEY, amount int)")
    pg.sql("INSERT INTO busy_orders (amount) SELECT g FROM generate_series(1, 20000) g")
    stop = threading.Event()

    def writer() -> None:
        import psycopg2

        conn = psycopg2.connect(pg.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO busy_orders (amount) VALUES (1), (2), (3)")
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        replicator = _replicator(
            tmp_path,
            {
                "kind": "postgres",
                "name": "busy",
                "dsn": pg.dsn,
                "tables": [{"name": "busy_orders"}],
            },
        )
        report = replicator.run(max_seconds=3)
        assert report.snapshot_rows >= 20000
    finally:
        stop.set()
        thread.join()
    replicator.run()
    source = pg.sql("SELECT count(*), sum(amount) FROM busy_orders")[0]
    assert _lake(tmp_path, "SELECT count(*), sum(amount) FROM busy_busy_orders")[0] == source
    feed = changes_since(table_path(tmp_path / "lake", "busy", "busy_orders"), -1)
    kinds = feed["_change_type"].to_pylist()
    # a row both copied and streamed would show up as an update; none may
    assert set(kinds) == {"insert"} and len(kinds) == source[0]


def test_kill_9_mid_stream_loses_and_doubles_nothing(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS ledger")
    pg.sql("DROP TABLE IF EXISTS counters")
    pg.sql("CREATE TABLE ledger (id bigserial PRIMARY KEY, note text)")
    pg.sql("CREATE TABLE counters (name text PRIMARY KEY, n bigint)")
    pg.sql("INSERT INTO counters VALUES ('writes', 0)")
    data = tmp_path / "data"
    env = {**os.environ, "KIRANA_DATA_DIR": str(data)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*KIRANA, *args], env=env, capture_output=True, text=True)

    added = cli(
        "sources",
        "add-postgres",
        "crash",
        "--dsn",
        pg.dsn,
        "--table",
        "ledger",
        "--table",
        "counters",
    )
    assert added.returncode == 0, added.stderr
    follower = subprocess.Popen(
        [*KIRANA, "sources", "sync", "crash", "--follow", "--max-rows", "200"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import psycopg2

    state = ReplicationState(data / "state")
    _wait_for(lambda: state.progress("crash").snapshot_done, "the snapshot")
    conn = psycopg2.connect(pg.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for i in range(600):
            cur.execute("BEGIN")
            cur.execute("INSERT INTO ledger (note) VALUES (%s)", (f"n{i}",))
            cur.execute("UPDATE counters SET n = n + 1 WHERE name = 'writes'")
            cur.execute("COMMIT")
            if i == 300:  # once part of the stream is applied, pull the plug mid-stream
                _wait_for(lambda: state.progress("crash").rows_applied > 0, "streamed rows")
                follower.send_signal(signal.SIGKILL)
                follower.wait()
    conn.close()
    assert follower.returncode == -signal.SIGKILL
    assert state.progress("crash").rows_applied < 1200, (
        "the follower saw everything before the kill"
    )
    finished = cli("sources", "sync", "crash")
    assert finished.returncode == 0, finished.stderr
    lake = data / "lake"
    assert connect(lake).sql(
        "SELECT count(*), count(DISTINCT id), max(id) FROM crash_ledger"
    ).fetchall() == [(600, 600, 600)]
    assert connect(lake).sql("SELECT n FROM crash_counters").fetchall() == [(600,)]
    feed = changes_since(table_path(lake, "crash", "ledger"), -1)
    ids = feed["id"].to_pylist()
    assert set(feed["_change_type"].to_pylist()) == {"insert"}
    assert len(ids) == len(set(ids)) == 600
    status = json.loads(cli("sources", "status", "crash").stdout)
    assert status["last_error"] is None and status["tables"]["ledger"]["delta_version"] >= 1


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_truncate_and_key_change(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS skus")
    pg.sql("CREATE TABLE skus (code text PRIMARY KEY, price int)")
    pg.sql("INSERT INTO skus VALUES ('a', 1), ('b', 2)")
    replicator = _replicator(
        tmp_path, {"kind": "postgres", "name": "cat", "dsn": pg.dsn, "tables": [{"name": "skus"}]}
    )
    replicator.run()
    pg.sql("UPDATE skus SET code = 'c' WHERE code = 'a'")
    replicator.run()
    assert _lake(tmp_path, "SELECT code, price FROM cat_skus ORDER BY code") == [("b", 2), ("c", 1)]
    pg.sql("TRUNCATE skus")
    pg.sql("INSERT INTO skus VALUES ('z', 9)")
    replicator.run()
    assert _lake(tmp_path, "SELECT code, price FROM cat_skus") == [("z", 9)]
    remove_source(replicator.state, "cat")
    assert pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'kirana_cat'") == [
        (0,)
    ]
    assert pg.sql("SELECT count(*) FROM pg_publication WHERE pubname = 'kirana_cat'") == [(0,)]


def test_unchanged_toast_values_are_kept(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS docs")
    pg.sql("CREATE TABLE docs (id int PRIMARY KEY, body text, views int)")
    big = "".join(str(i) for i in range(20000))  # incompressible enough to be TOASTed
    pg.sql("INSERT INTO docs VALUES (1, %s, 0)", big)
    replicator = _replicator(
        tmp_path, {"kind": "postgres", "name": "cms", "dsn": pg.dsn, "tables": [{"name": "docs"}]}
    )
    replicator.run()
    pg.sql("UPDATE docs SET views = views + 1 WHERE id = 1")
    replicator.run()
    assert _lake(tmp_path, "SELECT views, body = ? FROM cms_docs".replace("?", f"'{big}'")) == [
        (1, True)
    ]


def test_table_without_usable_identity_is_refused(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS nokey")
    pg.sql("CREATE TABLE nokey (a int, b int)")
    replicator = _replicator(
        tmp_path, {"kind": "postgres", "name": "nk", "dsn": pg.dsn, "tables": [{"name": "nokey"}]}
    )
    with pytest.raises(ValueError, match="no primary key"):
        replicator.run()
