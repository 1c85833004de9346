"""Out-of-line (TOASTed) values against a real PostgreSQL: an update that does not resend
a large value gets the last value the row had, in commit order, inside a batch and across
batches; a value that was never known is the documented marker plus a status warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from kirana.lake.catalog import connect
from kirana.replication.lake import table_path
from kirana.replication.service import source_status
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator
from kirana.replication.unchanged import UNAVAILABLE

pytestmark = [pytest.mark.slow, pytest.mark.server]

BIG = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300))"
"""9,600 random characters: too large and too random to stay inline, so TOASTed."""


def _replicator(tmp_path: Path, pg, name: str, table: str) -> Replicator:
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": name, "dsn": pg.dsn, "tables": [{"name": table}]}
    )
    state.add(config)
    return Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)


def _same_as_source(tmp_path: Path, pg, source: str, table: str) -> list[tuple]:
    expected = pg.sql(f"SELECT id, title, body, length(body) FROM {table} ORDER BY id")
    got = (
        connect(tmp_path / "lake")
        .sql(f"SELECT id, title, body, length(body) FROM {source}_{table} ORDER BY id")
        .fetchall()
    )
    assert got == expected
    return got


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_large_values_survive_updates_in_and_across_batches(postgres_server, tmp_path, identity):
    pg = postgres_server
    table = f"toast_{identity.lower()}"
    pg.sql(f"DROP TABLE IF EXISTS {table}")
    pg.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, title text, body text)")
    pg.sql(f"ALTER TABLE {table} REPLICA IDENTITY {identity}")
    pg.sql(f"INSERT INTO {table} SELECT g, 't' || g, {BIG} FROM generate_series(1, 4) g")
    replicator = _replicator(tmp_path, pg, "cms", table)
    replicator.run()
    _same_as_source(tmp_path, pg, "cms", table)

    # The case: set a large value, then update another column, in one transaction.
    pg.sql(
        f"BEGIN; UPDATE {table} SET body = {BIG} WHERE id = 1;"
        f" UPDATE {table} SET title = 'retitled' WHERE id = 1; COMMIT"
    )
    # Across transactions of one batch, and a key change leaving the large value alone.
    pg.sql(f"UPDATE {table} SET body = {BIG} WHERE id = 2")
    pg.sql(f"UPDATE {table} SET title = 'again' WHERE id = 2")
    pg.sql(f"UPDATE {table} SET id = 30 WHERE id = 3")
    pg.sql(f"UPDATE {table} SET title = 'moved' WHERE id = 30")
    replicator.run()
    rows = _same_as_source(tmp_path, pg, "cms", table)
    assert [r[3] for r in rows] == [9600] * 4

    # Across batches: the value comes from the lake.
    pg.sql(f"UPDATE {table} SET title = 'later' WHERE id IN (1, 30)")
    replicator.run()
    _same_as_source(tmp_path, pg, "cms", table)
    assert source_status(replicator.state, tmp_path / "lake", "cms")["warnings"] == []


def test_a_value_never_known_is_the_marker_with_a_warning(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS toast_lost")
    pg.sql("CREATE TABLE toast_lost (id int PRIMARY KEY, title text, body text)")
    pg.sql(f"INSERT INTO toast_lost VALUES (1, 'a', {BIG}), (2, 'b', {BIG})")
    replicator = _replicator(tmp_path, pg, "lost", "toast_lost")
    replicator.run()
    DeltaTable(table_path(tmp_path / "lake", "lost", "toast_lost")).delete("id = 2")  # erased
    pg.sql("UPDATE toast_lost SET title = 'b2' WHERE id = 2")
    replicator.run()
    lake = connect(tmp_path / "lake").sql("SELECT id, title, body FROM lost_toast_lost ORDER BY id")
    rows = lake.fetchall()
    assert rows[1] == (2, "b2", UNAVAILABLE)
    assert len(rows[0][2]) == 9600
    warnings = source_status(replicator.state, tmp_path / "lake", "lost")["warnings"]
    assert [w["subject"] for w in warnings] == ["unavailable:toast_lost.body"]
    assert "REPLICA IDENTITY FULL" in warnings[0]["message"]
    assert warnings[0]["count"] == 1
