"""Schema changes at a PostgreSQL source: a column added with a DEFAULT has that default
in the lake for the rows that existed (PostgreSQL keeps it in the catalog without
rewriting them), including rows changed before the ALTER in the same batch."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from kirana.lake.catalog import connect
from kirana.replication.lake import table_path
from kirana.replication.service import source_status
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_added_columns_with_defaults_reach_existing_rows(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS evolving")
    pg.sql("CREATE TABLE evolving (id int PRIMARY KEY, name text)")
    pg.sql("INSERT INTO evolving SELECT g, 'n' || g FROM generate_series(1, 5) g")
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": "evo", "dsn": pg.dsn, "tables": [{"name": "evolving"}]}
    )
    state.add(config)
    replicator = Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)
    replicator.run()

    pg.sql("INSERT INTO evolving VALUES (6, 'before the alter')")  # same batch, older relation
    pg.sql("ALTER TABLE evolving ADD COLUMN tier int NOT NULL DEFAULT 7")
    pg.sql("ALTER TABLE evolving ADD COLUMN label text DEFAULT 'it''s new'")
    pg.sql("ALTER TABLE evolving ADD COLUMN plain text")
    pg.sql("INSERT INTO evolving VALUES (7, 'after', 1, 'own', 'p')")
    pg.sql("UPDATE evolving SET name = 'changed' WHERE id = 2")
    replicator.run()

    query = "SELECT id, name, tier, label, plain FROM {} ORDER BY id"
    expected = pg.sql(query.format("evolving"))
    assert connect(tmp_path / "lake").sql(query.format("evo_evolving")).fetchall() == expected
    assert expected[0] == (1, "n1", 7, "it's new", None)
    history = DeltaTable(table_path(tmp_path / "lake", "evo", "evolving")).history()
    assert any(h["operation"] in ("WRITE", "ADD COLUMN", "ADD COLUMNS") for h in history[:2])


def test_dropped_and_renamed_columns_are_kept_and_shown(postgres_server, tmp_path):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS shrinking")
    pg.sql("CREATE TABLE shrinking (id int PRIMARY KEY, old_name text, legacy int)")
    pg.sql("INSERT INTO shrinking VALUES (1, 'a', 10)")
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": "shr", "dsn": pg.dsn, "tables": [{"name": "shrinking"}]}
    )
    state.add(config)
    replicator = Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)
    replicator.run()
    pg.sql("ALTER TABLE shrinking DROP COLUMN legacy")
    pg.sql("ALTER TABLE shrinking RENAME COLUMN old_name TO new_name")
    pg.sql("INSERT INTO shrinking VALUES (2, 'b')")
    replicator.run()
    rows = connect(tmp_path / "lake").sql(
        "SELECT id, old_name, legacy, new_name FROM shr_shrinking ORDER BY id"
    )
    assert rows.fetchall() == [(1, "a", 10, None), (2, None, None, "b")]
    warnings = source_status(state, tmp_path / "lake", "shr")["warnings"]
    assert sorted(w["subject"] for w in warnings) == [
        "column_gone:shrinking.legacy",
        "column_gone:shrinking.old_name",
    ]
    assert all("--resnapshot" in w["message"] for w in warnings)
