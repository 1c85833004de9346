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


def test_the_connection_of_a_thread_that_ended_is_closed_by_the_next_one(connections) -> None:
    """Servers start and end worker threads all day: their connections must not pile up."""

    def open_one(into: list[sqlite3.Connection]) -> None:
        into.append(connections.get())

    ended: list[sqlite3.Connection] = []
    first = threading.Thread(target=open_one, args=(ended,))
    first.start()
    first.join()
    ended[0].execute("SELECT 1")  # still open: nothing new was opened since
    later: list[sqlite3.Connection] = []
    second = threading.Thread(target=open_one, args=(later,))
    second.start()
    second.join()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        ended[0].execute("SELECT 1")
    assert count(connections) == 0  # ours (a live thread's) is untouched


def test_a_failed_commit_is_rolled_back_and_the_thread_can_write_again(connections) -> None:
    conn = connections.get()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(sqlite3.IntegrityError), connections.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        tx.execute("INSERT INTO child VALUES (42)")  # checked only at COMMIT
    assert not conn.in_transaction
    assert count(connections) == 0
    with connections.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (2)")
    assert count(connections) == 1
