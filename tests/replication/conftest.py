"""Database servers of our own for replication tests: PostgreSQL (wal_level=logical) and
MariaDB (binlog_format=ROW), each started once per test session on a free port in a
temporary directory, from the installed server binaries.

Both refuse to run as root, so as root they run as the ``postgres`` / ``mysql``
system users (created by the Debian packages). A test skips only when the
binaries are not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Run as ``user`` when we are root (the servers refuse root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", user, "--", *argv]


def _hand_to(user: str, path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


@dataclass
class PostgresServer:
    port: int
    dsn: str
    url: str
    data: Path
    bin_dir: Path

    def sql(self, statement: str, *params: object) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (/usr/lib/postgresql/*/bin)")
    with running_postgres() as server:
        yield server


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """PostgreSQL with wal_level=logical on a free port in a temporary directory."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="kirana-pg-"))
    _hand_to("postgres", root)
    data = root / "data"
    port = free_port()
    subprocess.run(
        _as_user(
            "postgres",
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c wal_level=logical"
        " -c max_replication_slots=20 -c max_wal_senders=20 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        _as_user(
            "postgres",
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer(
        port,
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        data,
        bin_dir,
    )
    try:
        yield server
    finally:
        subprocess.run(
            _as_user(
                "postgres", [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class MariaDBServer:
    port: int
    url: str
    root: Path

    def connect(self, database: str | None = None):
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=database,
            autocommit=True,
        )

    def sql(self, statement: str, *params: object, database: str | None = "kirana") -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params or None)
                return list(cur.fetchall())
        finally:
            conn.close()


def _mariadb_bins() -> tuple[str | None, str | None]:
    server_bin = shutil.which("mariadbd") or shutil.which("mysqld")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return server_bin, install


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    if None in _mariadb_bins():
        pytest.skip("MariaDB server binaries are not installed (mariadbd, mariadb-install-db)")
    with running_mariadb() as server:
        yield server


@contextmanager
def running_mariadb() -> Iterator[MariaDBServer]:
    """MariaDB with a row-based binlog on a free port in a temporary directory."""
    server_bin, install = _mariadb_bins()
    if server_bin is None or install is None:
        raise RuntimeError("MariaDB server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="kirana-maria-"))
    user = "mysql" if os.geteuid() == 0 else os.environ.get("USER", "")
    _hand_to("mysql", root)
    data = root / "data"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            server_bin,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={root}/sock",
            f"--pid-file={root}/pid",
            f"--log-bin={data}/binlog",
            "--server-id=1",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-name-resolve",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "log", "wb"),  # noqa: SIM115 - the server keeps it
    )
    server = MariaDBServer(port, f"mysql://root@127.0.0.1:{port}/kirana", root)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.sql("CREATE DATABASE IF NOT EXISTS kirana", database=None)
            break
        except Exception as exc:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                log = (root / "log").read_text()[-2000:]
                raise RuntimeError(f"MariaDB did not start: {log}") from exc
            time.sleep(0.2)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
