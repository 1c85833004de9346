"""Errors where people look: a keyless table is refused when the source is added, a failing
source shows why in ``kirana sources status`` and the API, and the lag grows while nothing
replicates."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from kirana.replication.service import current_lag, source_status
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

KIRANA = [sys.executable, "-m", "kirana.cli.main"]


def test_keyless_tables_are_refused_when_added(kirana, postgres_server, mariadb_server):
    postgres_server.sql("DROP TABLE IF EXISTS keyless")
    postgres_server.sql("CREATE TABLE keyless (a int, b int)")
    mariadb_server.sql("DROP TABLE IF EXISTS keyless")
    mariadb_server.sql("CREATE TABLE keyless (a int, b int)")
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    definitions = [
        ({"kind": "postgres", "dsn": postgres_server.dsn}, "REPLICA IDENTITY FULL"),
        ({"kind": "mysql", "dsn": mariadb_server.url}, "no primary key"),
    ]
    with kirana.client() as http:
        for definition, fix in definitions:
            body = {**definition, "name": "nokey", "tables": [{"name": "keyless"}]}
            answer = http.post("/v1/replication/sources", json=body, headers=admin)
            assert answer.status_code == 422, answer.text
            assert answer.json()["code"] == "table_refused"
            assert "keyless" in answer.json()["message"] and fix in answer.json()["message"]
            later = {**body, "tables": [{"name": "created_later"}, {"name": "keyless"}]}
            answer = http.post("/v1/replication/sources", json=later, headers=admin)
            assert answer.status_code == 422 and "keyless" in answer.json()["message"]
        assert http.get("/v1/replication/sources", headers=admin).json() == []
    where = ["--data-dir", str(kirana.settings.data_dir), "--table", "keyless"]
    added = subprocess.run(
        [*KIRANA, "sources", "add-postgres", "nokey", "--dsn", postgres_server.dsn, *where],
        capture_output=True,
        text=True,
    )
    assert added.returncode != 0 and "REPLICA IDENTITY FULL" in added.stderr


def test_a_failing_source_shows_its_error_in_status_and_the_api(kirana, postgres_server):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS failing")
    pg.sql("CREATE TABLE failing (id int PRIMARY KEY, amount numeric(8,2))")
    pg.sql("INSERT INTO failing VALUES (1, 'NaN')")
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    body = {"kind": "postgres", "name": "failing", "dsn": pg.dsn, "tables": [{"name": "failing"}]}
    with kirana.client() as http:
        assert http.post("/v1/replication/sources", json=body, headers=admin).status_code == 201
        deadline = time.monotonic() + 30
        while True:  # the serve job tries every 2 s
            status = http.get("/v1/replication/sources/failing", headers=admin).json()
            if status["last_error"]:
                break
            assert time.monotonic() < deadline, "the job's failure never reached the status"
            time.sleep(0.3)
    assert "failing.amount" in status["last_error"] and "NaN" in status["last_error"]
    shown = subprocess.run(
        [*KIRANA, "sources", "status", "failing", "--data-dir", str(kirana.settings.data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "NaN" in json.loads(shown.stdout)["last_error"]


def test_lag_grows_while_nothing_replicates(postgres_server, tmp_path):
    assert current_lag(None, None, 100.0) is None
    assert current_lag(0.5, 100.0, 100.0) == 0.5
    assert current_lag(0.5, 100.0, 160.0) == 60.5
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS lagging")
    pg.sql("CREATE TABLE lagging (id int PRIMARY KEY)")
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": "lagging", "dsn": pg.dsn, "tables": [{"name": "lagging"}]}
    )
    state.add(config)
    Replicator(config, tmp_path / "lake", state, wait_seconds=0.2).run()
    first = source_status(state, tmp_path / "lake", "lagging")["lag_seconds"]
    time.sleep(1.5)  # the replicator is down
    later = source_status(state, tmp_path / "lake", "lagging")["lag_seconds"]
    assert later >= first + 1.0


def test_tables_are_added_over_the_api(kirana, postgres_server):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS api_first, api_second, keyless")
    pg.sql("CREATE TABLE api_first (id int PRIMARY KEY)")
    pg.sql("CREATE TABLE api_second (id int PRIMARY KEY, v text)")
    pg.sql("INSERT INTO api_second VALUES (1, 'one'), (2, 'two')")
    pg.sql("CREATE TABLE keyless (a int)")
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    body = {"kind": "postgres", "name": "grow", "dsn": pg.dsn, "tables": [{"name": "api_first"}]}
    with kirana.client() as http:
        assert http.post("/v1/replication/sources", json=body, headers=admin).status_code == 201
        url = "/v1/replication/sources/grow/tables"
        refused = http.post(url, json={"tables": [{"name": "keyless"}]}, headers=admin)
        assert refused.status_code == 422 and "keyless" in refused.json()["message"]
        again = http.post(url, json={"tables": [{"name": "api_first"}]}, headers=admin)
        assert again.status_code == 422 and "already" in again.json()["message"]
        nowhere = "/v1/replication/sources/nope/tables"
        missing = http.post(nowhere, json={"tables": [{"name": "api_second"}]}, headers=admin)
        assert missing.status_code == 404
        empty = http.post(url, json={"tables": []}, headers=admin)
        assert empty.status_code == 422 and "tables" in empty.json()["message"]
        added = http.post(url, json={"tables": [{"name": "api_second"}]}, headers=admin)
        assert added.status_code == 200, added.text
        assert set(added.json()["tables"]) == {"api_first", "api_second"}
        deadline = time.monotonic() + 30
        while _rows(kirana, "SELECT id, v FROM grow_api_second ORDER BY id") != [
            (1, "one"),
            (2, "two"),
        ]:
            assert time.monotonic() < deadline, "the added table was never copied"
            time.sleep(0.3)


def _rows(kirana, sql: str) -> list[tuple]:
    try:
        return kirana.lake(sql)
    except Exception:  # the table is not in the lake yet
        return []
