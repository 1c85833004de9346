"""`kirana sources add-postgres` checks before it saves; `remove` and `status` explain failures.

Against real servers: the machine's PostgreSQL (wal_level as configured there) and one of our
own with wal_level=logical (tests/replication/conftest.py).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psycopg2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kirana.cli.main import app
from tests.replication.conftest import PostgresServer, postgres_server  # noqa: F401 - fixture

runner = CliRunner()
MACHINE_POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def kirana(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "400"})
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def saved_sources(data_dir: Path) -> list[str]:
    code, out = kirana(data_dir, "sources", "status")
    assert code == 0, out
    return [json.loads(line)["name"] for line in out.splitlines() if line.startswith("{")]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


passwords = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="'\\"),
    min_size=8,
    max_size=24,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(password=passwords, url=st.booleans())
def test_a_dsn_that_does_not_connect_is_refused_without_showing_its_password(
    tmp_path: Path, password: str, url: bool
) -> None:
    port = closed_port()
    dsn = (
        f"postgresql://repl:{password}@127.0.0.1:{port}/shop"
        if url
        else f"host=127.0.0.1 port={port} user=repl password='{password}' dbname=shop"
    )
    if url and any(c in password for c in "@/?#:%"):
        return  # not a valid URL user info; the libpq form covers these passwords
    code, out = kirana(tmp_path, "sources", "add-postgres", "shop", "--dsn", dsn, "-t", "orders")
    assert code == 1
    assert "cannot connect with --dsn" in out and "--no-check" in out
    assert password not in out
    assert "shop" not in saved_sources(tmp_path)


def test_a_malformed_dsn_is_refused_naming_the_option(tmp_path: Path) -> None:
    code, out = kirana(tmp_path, "sources", "add-postgres", "shop", "--dsn", "host='x", "-t", "o")
    assert code == 1 and "--dsn is not a libpq connection string" in out
    assert saved_sources(tmp_path) == []


def test_wal_level_is_checked_before_saving(tmp_path: Path) -> None:
    conn = psycopg2.connect(MACHINE_POSTGRES)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            (wal_level,) = cur.fetchone()
    finally:
        conn.close()
    code, out = kirana(
        tmp_path, "sources", "add-postgres", "local", "--dsn", MACHINE_POSTGRES, "-t", "orders"
    )
    if wal_level == "logical":
        assert code == 0, out
    else:
        assert code == 1 and f"wal_level is {wal_level!r}" in out and "ALTER SYSTEM" in out
        assert saved_sources(tmp_path) == []


def test_a_server_ready_for_replication_is_saved_and_a_user_without_replication_is_not(
    tmp_path: Path,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    code, out = kirana(
        tmp_path, "sources", "add-postgres", "shop", "--dsn", postgres_server.dsn, "-t", "orders"
    )
    assert code == 0, out
    postgres_server.sql("DROP ROLE IF EXISTS kirana_no_repl")
    postgres_server.sql("CREATE ROLE kirana_no_repl LOGIN")
    plain = f"host=127.0.0.1 port={postgres_server.port} user=kirana_no_repl dbname=postgres"
    code, out = kirana(tmp_path, "sources", "add-postgres", "plain", "--dsn", plain, "-t", "o")
    assert code == 1 and "'kirana_no_repl' may not replicate" in out
    assert saved_sources(tmp_path) == ["shop"]
    code, out = kirana(tmp_path, "sources", "remove", "shop")
    assert code == 0, out


def test_an_unreachable_source_shows_its_error_in_status_and_removes_without_traceback(
    tmp_path: Path,
) -> None:
    dsn = f"host=127.0.0.1 port={closed_port()} user=repl password=s3cret-pass dbname=shop"
    code, out = kirana(
        tmp_path, "sources", "add-postgres", "shop", "--dsn", dsn, "-t", "orders", "--no-check"
    )
    assert code == 0, out
    code, out = kirana(tmp_path, "sources", "sync", "shop")
    assert code == 1
    code, out = kirana(tmp_path, "sources", "status", "shop")
    [status] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert "Connection refused" in status["last_error"] and "s3cret-pass" not in out
    code, out = kirana(tmp_path, "sources", "remove", "shop")
    assert code == 1 and "--no-drop-slot" in out and "s3cret-pass" not in out
    code, out = kirana(tmp_path, "sources", "remove", "shop", "--no-drop-slot")
    assert code == 0 and saved_sources(tmp_path) == []
