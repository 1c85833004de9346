"""Property, against a real PostgreSQL: random inserts, updates that set or leave alone a
large (TOASTed) value, deletes and key changes, in random transactions, replicated in
batches of random sizes by a replicator restarted between runs; after every run the lake
equals the source, large values included."""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.lake.catalog import connect
from kirana.replication.service import remove_source
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

BIG = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300))"
_examples = itertools.count()

operation = st.tuples(
    st.sampled_from(["insert", "title", "body", "both", "delete", "move"]),
    st.integers(1, 6),
    st.integers(1, 6),
)
transaction = st.lists(operation, min_size=1, max_size=3)


def _run(cur, op: str, key: int, other: int, table: str) -> None:
    if op == "insert":
        cur.execute(
            f"INSERT INTO {table} VALUES (%s, 't', {BIG}) ON CONFLICT (id) DO NOTHING", (key,)
        )
    elif op == "title":  # leaves the large value alone: pgoutput does not resend it
        cur.execute(f"UPDATE {table} SET title = title || 'x' WHERE id = %s", (key,))
    elif op == "body":
        cur.execute(f"UPDATE {table} SET body = {BIG} WHERE id = %s", (key,))
    elif op == "both":
        cur.execute(f"UPDATE {table} SET body = {BIG}, title = 'b' WHERE id = %s", (key,))
    elif op == "delete":
        cur.execute(f"DELETE FROM {table} WHERE id = %s", (key,))
    else:  # a key change that leaves the large value alone
        cur.execute(
            f"UPDATE {table} SET id = %s WHERE id = %s"
            f" AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = %s)",
            (other, key, other),
        )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    runs=st.lists(st.lists(transaction, min_size=1, max_size=3), min_size=1, max_size=5),
    batch_rows=st.lists(st.integers(1, 4), min_size=5, max_size=5),
)
def test_lake_equals_source_after_every_run(postgres_server, tmp_path_factory, runs, batch_rows):
    pg = postgres_server
    number = next(_examples)
    table, name = f"prop_{number}", f"prop{number}"
    tmp: Path = tmp_path_factory.mktemp("prop")
    pg.sql(f"DROP TABLE IF EXISTS {table}")
    pg.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, title text, body text)")
    pg.sql(f"INSERT INTO {table} VALUES (1, 'seed', {BIG})")
    state = ReplicationState(tmp / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": name, "dsn": pg.dsn, "tables": [{"name": table}]}
    )
    state.add(config)
    conn = psycopg2.connect(pg.dsn)
    query = "SELECT id, title, md5(body), length(body) FROM {} ORDER BY id"
    try:
        Replicator(config, tmp / "lake", state, wait_seconds=0.2).run()
        for transactions, rows in zip(runs, batch_rows, strict=False):
            for operations in transactions:
                with conn, conn.cursor() as cur:  # one transaction
                    for op, key, other in operations:
                        _run(cur, op, key, other, table)
            # a new replicator each run, as after a restart; batches of `rows` changes
            Replicator(config, tmp / "lake", state, max_rows=rows, wait_seconds=0.2).run()
            expected = pg.sql(query.format(table))
            lake = connect(tmp / "lake").sql(query.format(f"{name}_{table}")).fetchall()
            assert lake == expected
        assert state.warnings(name) == []
    finally:
        conn.close()
        remove_source(state, name)
        state.close()
