"""The DuckDB diff agrees with a plain set computation for any before/after pair."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.syncs.diff import diff_rows

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
    added = {k for k in after if k not in before}
    updated = {k for k in after if k in before and after[k] != before[k]}
    removed = set(before) - set(after)
    assert {k for k, prev, _, _ in result.changed if prev is None} == added
    assert {k for k, prev, _, _ in result.changed if prev is not None} == updated
    assert {k for k, _ in result.removed} == removed
    assert result.unchanged == len(after) - len(added) - len(updated)
    for key, _, _, fields in result.changed:
        assert (fields["n"], fields["tag"]) == after[key] and fields["id"] == key
