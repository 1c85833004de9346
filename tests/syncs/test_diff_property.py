"""The DuckDB diff agrees with a plain set computation for any before/after pair."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.syncs.diff import diff_rows
from kirana.syncs.runner import record_id

tables = st.dictionaries(
    st.text(min_size=1, max_size=4),
    st.tuples(st.integers(-3, 3), st.one_of(st.none(), st.sampled_from(["x", "y", "é"]))),
    max_size=25,
)


def arrow(rows: dict) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(rows), pa.string()),
            "n": pa.array([v[0] for v in rows.values()], pa.int64()),
            "tag": pa.array([v[1] for v in rows.values()], pa.string()),
        }
    )


@given(tables, tables)
@settings(max_examples=30, deadline=None)
def test_diff_matches_set_arithmetic(before: dict, after: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = duckdb.connect()
        first = Path(tmp) / "1.parquet"
        diff_rows(conn, arrow(before), "id", {}, None, first)
        result = diff_rows(conn, arrow(after), "id", {}, first, Path(tmp) / "2.parquet")
        new_only = {k for part in result.iter_changed(only_new=True) for _, k, _ in part}
        changed = result.changed
        ids = {k: rid for part in result.iter_changed(id_prefix="s|") for rid, k, _ in part}
        hashes = dict(conn.execute("SELECT k, h FROM sync_current").fetchall())
        previous = dict(conn.execute("SELECT k, h FROM sync_previous").fetchall())
    added = {k for k in after if k not in before}
    updated = {k for k in after if k in before and after[k] != before[k]}
    removed = set(before) - set(after)
    for key, rid in ids.items():  # DuckDB and Python derive the same record ids
        assert rid == record_id("s", key, previous.get(key), hashes[key])
    assert {k for k, _ in changed} == added | updated
    assert new_only == added
    assert (result.added, result.updated) == (len(added), len(updated))
    assert {k for k, _ in result.removed} == removed
    assert result.unchanged == len(after) - len(added) - len(updated)
    for key, fields in changed:
        assert (fields["n"], fields["tag"]) == after[key] and fields["id"] == key
