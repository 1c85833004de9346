"""The stores' shared SQLite pattern: a connection per thread, transactions that take the
write lock at once, roll back on any exception and join when nested."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kirana.store.sqlite_connections import ThreadConnections


@pytest.fixture
def connections(tmp_path: Path):
    made = ThreadConnections(tmp_path / "store.sqlite")
    made.get().execute("CREATE TABLE t (x INTEGER)")
    yield made
    made.close()


def count(connections: ThreadConnections) -> int:
    return connections.get().execute("SELECT count(*) FROM t").fetchone()[0]


def test_each_thread_has_its_own_connection_and_keeps_it(connections) -> None:
    seen: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: seen.extend([connections.get(), connections.get()]))
    thread.start()
    thread.join()
    assert seen[0] is seen[1]
    assert connections.get() is connections.get() is not seen[0]


def test_a_failed_transaction_leaves_nothing(connections) -> None:
    with pytest.raises(ValueError), connections.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        raise ValueError("half way")
    assert count(connections) == 0
    with connections.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    assert count(connections) == 1


def test_a_nested_transaction_joins_the_outer_one(connections) -> None:
    with pytest.raises(ValueError), connections.transaction() as outer:
        outer.execute("INSERT INTO t VALUES (1)")
        with connections.transaction() as inner:
            assert inner is outer
            inner.execute("INSERT INTO t VALUES (2)")
        raise ValueError("the outer one fails after the inner one ended")
    assert count(connections) == 0  # the inner insert went with the outer rollback


def test_the_write_lock_is_taken_by_the_transaction_itself(connections, tmp_path) -> None:
    """BEGIN IMMEDIATE: another writer waits (here: gives up) even before any write."""
    other = sqlite3.connect(tmp_path / "store.sqlite", timeout=0, isolation_level=None)
    try:
        with (
            connections.transaction(),
            pytest.raises(sqlite3.OperationalError, match="locked"),
        ):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_close_closes_every_thread_connection(connections) -> None:
    theirs: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: theirs.append(connections.get()))
    thread.start()
    thread.join()
    ours = connections.get()
    connections.close()
    for conn in (ours, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    assert connections.get().execute("SELECT count(*) FROM t").fetchone() == (0,)  # reopens
