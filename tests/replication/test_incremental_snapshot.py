"""A table added to a streaming PostgreSQL source is copied alone (the others are not
copied again), under concurrent writes to both, with a ``kill -9`` in the middle of the
copy; afterwards both lake tables equal the source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from deltalake import DeltaTable

from kirana.lake.catalog import connect
from kirana.replication.lake import table_path
from kirana.replication.state import ReplicationState

pytestmark = [pytest.mark.slow, pytest.mark.server]

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def _writer(dsn: str, stop: threading.Event) -> threading.Thread:
    """Inserts, updates and deletes in both tables until stopped."""

    def run() -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        i = 0
        with conn.cursor() as cur:
            while not stop.is_set():
                i += 1
                cur.execute("INSERT INTO inc_a (note) VALUES (%s)", (f"a{i}",))
                cur.execute("UPDATE inc_b SET n = n + 1 WHERE id = %s", (i % 5000 + 1,))
                cur.execute("INSERT INTO inc_b (n) VALUES (%s)", (i,))
                cur.execute("DELETE FROM inc_b WHERE id = %s", (i % 5000 + 5001,))
                time.sleep(0.002)
        conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _copied(path) -> bool:
    try:
        return DeltaTable(path).transaction_version("kirana.replication.inc") is not None
    except Exception:  # not created yet
        return False


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_added_table_is_copied_alone_under_writes_and_a_crash(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS inc_a, inc_b")
    pg.sql("CREATE TABLE inc_a (id bigserial PRIMARY KEY, note text)")
    pg.sql("CREATE TABLE inc_b (id bigserial PRIMARY KEY, n bigint, pad text)")
    pg.sql("INSERT INTO inc_a (note) SELECT 'seed' FROM generate_series(1, 100)")
    pg.sql(
        "INSERT INTO inc_b (n, pad) SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g"
    )
    data = tmp_path / "data"
    env = {**os.environ, "KIRANA_DATA_DIR": str(data)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*KIRANA, *args], env=env, capture_output=True, text=True)

    assert cli("sources", "add-postgres", "inc", "--dsn", pg.dsn, "-t", "inc_a").returncode == 0
    assert cli("sources", "sync", "inc").returncode == 0
    lake = data / "lake"
    a_version = DeltaTable(table_path(lake, "inc", "inc_a")).version()

    stop = threading.Event()
    writer = _writer(pg.dsn, stop)
    added = cli("sources", "add-table", "inc", "-t", "inc_b")
    assert added.returncode == 0, added.stderr
    follower = subprocess.Popen(
        [*KIRANA, "sources", "sync", "inc", "--follow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    adding = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'kirana_inc_adding'"
    _wait_for(lambda: pg.sql(adding) == [(1,)], "the copy of the added table to start")
    follower.send_signal(signal.SIGKILL)  # mid-copy
    follower.wait()
    assert DeltaTable(table_path(lake, "inc", "inc_a")).version() >= a_version
    _wait_for(lambda: pg.sql(adding) == [(0,)], "the temporary slot to go")

    again = subprocess.Popen(  # copies inc_b afresh on a new snapshot, streams both on
        [*KIRANA, "sources", "sync", "inc", "--follow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    b_path = table_path(lake, "inc", "inc_b")
    _wait_for(lambda: _copied(b_path), "the copy of the added table", timeout=120)
    time.sleep(1.0)  # stream both tables under the writes for a while
    again.send_signal(signal.SIGKILL)
    again.wait()
    stop.set()
    writer.join()
    finished = cli("sources", "sync", "inc")
    assert finished.returncode == 0, finished.stderr

    for table, columns in (("inc_a", "id, note"), ("inc_b", "id, n")):
        expected = pg.sql(f"SELECT {columns} FROM {table} ORDER BY id")
        got = connect(lake).sql(f"SELECT {columns} FROM inc_{table} ORDER BY id").fetchall()
        assert got == expected, table
    assert expected[-1][0] > 300000  # rows written during the copies are there
    history = DeltaTable(table_path(lake, "inc", "inc_a")).history()
    since_added = [h["operation"] for h in history if h["version"] > a_version]
    assert "WRITE" not in since_added  # inc_a was streamed on, never copied again
    state = ReplicationState(data / "state")
    assert state.progress("inc").last_error is None
