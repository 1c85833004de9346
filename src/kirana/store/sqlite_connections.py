"""How Kirana opens SQLite files, and the one-connection-per-thread pattern its stores share.

A ``sqlite3`` connection must not be used by two threads in the middle of a transaction,
and opening one per call costs more than most of the queries it would run. So each store
keeps one connection per thread (:class:`ThreadConnections`), opened on first use and all
closed together, and writes inside ``BEGIN IMMEDIATE`` transactions: the write lock is
taken by the first statement, so a read-validate-write sequence cannot interleave with
another process's.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """Open a SQLite database the way every Kirana component wants it: autocommit (the
    stores open their transactions), WAL (readers never wait for the writer), fsync'd
    commits, a 30 s wait for another writer, and deleted rows overwritten (erasure)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA secure_delete=ON")
    return conn


class ThreadConnections:
    """One connection to ``path`` per thread, opened by ``opener`` on first use. The list
    that lets :meth:`close` reach every connection also keeps those of threads that have
    ended, so each new connection first closes those: servers start and end worker threads
    all day."""

    def __init__(self, path: Path, opener: Callable[[Path], sqlite3.Connection] = connect) -> None:
        self.path = path
        self._opener = opener
        self._local = threading.local()
        self._all: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._opener(self.path)
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._close_orphans()
                self._all.append((weakref.ref(threading.current_thread()), conn))
        return conn

    def _close_orphans(self) -> None:
        alive = []
        for thread, conn in self._all:
            owner = thread()
            if owner is not None and owner.is_alive():
                alive.append((thread, conn))
            else:
                conn.close()
        self._all = alive

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement,
        rolled back on any exception; a nested call joins the outer transaction."""
        conn = self.get()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk); a failed COMMIT has not
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self._local.depth = 0

    def close(self) -> None:
        """Close every thread's connection (a thread that calls again gets a new one)."""
        with self._lock:
            for _, conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
