"""Unchanged large (TOAST) values: the lake equals the source after every batch, whatever
the batch boundaries, crashes and replays; a value never known gets the explicit marker.

The changes are shaped exactly as ``PostgresSource`` buffers them (an update that leaves
a large value alone lists it in ``_kirana_unchanged`` and omits it; a key change is a
delete of the old key followed by the new row with ``_kirana_moved``), and are applied
to real Delta tables.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.replication.changes import (
    DELETE,
    MOVED,
    OP,
    SEQ,
    UNCHANGED_COLUMNS,
    UPSERT,
    TableSpec,
)
from kirana.replication.lake import ReplicatedTable, table_path
from kirana.replication.unchanged import UNAVAILABLE, resolve_unchanged

SPEC = TableSpec("docs", ("id",))
LARGE = ("body", "blob")
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("title", pa.string()),
        ("body", pa.string()),
        ("blob", pa.binary()),
        (UNCHANGED_COLUMNS, pa.string()),
        (MOVED, pa.bool_()),
        (OP, pa.string()),
        (SEQ, pa.int64()),
    ]
)

operation = st.tuples(
    st.sampled_from(["write", "write", "write", "delete", "move"]),
    st.integers(0, 5),  # key
    st.integers(0, 5),  # new key for a move
    st.text(max_size=3),  # title
    st.sets(st.sampled_from(LARGE)),  # large columns the update leaves alone
    st.integers(0, 10**6),  # seed of new large values
)


def play(transactions: list[list[tuple]]) -> tuple[list[list[dict]], list[dict]]:
    """Run the operations on a model source: the change rows each transaction sends,
    and the source's rows after each transaction."""
    source: dict[int, dict] = {}
    sent, states = [], []
    for number, operations in enumerate(transactions):
        seq = (number + 1) * 100
        rows: list[dict] = []
        for kind, key, new_key, title, untouched, seed in operations:
            fresh = {"body": f"b{seed}" * 50, "blob": f"{seed}".encode() * 40}
            if key not in source:  # an insert always carries every value
                source[key] = {"id": key, "title": title, **fresh}
                rows.append({**source[key], OP: UPSERT, SEQ: seq})
            elif kind == "delete":
                del source[key]
                rows.append({"id": key, OP: DELETE, SEQ: seq})
            elif kind == "move" and new_key not in source:
                row = source.pop(key)
                source[new_key] = {**row, "id": new_key, "title": title}
                rows.append({"id": key, OP: DELETE, SEQ: seq})
                rows.append(
                    {
                        "id": new_key,
                        "title": title,
                        UNCHANGED_COLUMNS: ",".join(LARGE),
                        MOVED: True,
                        OP: UPSERT,
                        SEQ: seq,
                    }
                )
            else:
                row = {"id": key, "title": title, OP: UPSERT, SEQ: seq}
                for column in LARGE:
                    if column not in untouched:
                        source[key][column] = row[column] = fresh[column]
                source[key]["title"] = title
                if untouched:
                    row[UNCHANGED_COLUMNS] = ",".join(sorted(untouched))
                rows.append(row)
        sent.append(rows)
        states.append({k: dict(v) for k, v in source.items()})
    return sent, states


def lake_rows(tmp_path) -> dict[int, dict]:
    path = table_path(tmp_path / "lake", "pg", "docs")
    rows = DeltaTable(path).to_pyarrow_table(columns=["id", "title", "body", "blob"]).to_pylist()
    return {r["id"]: r for r in rows}


@settings(max_examples=30, deadline=None)
@given(
    transactions=st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=12),
    batch_sizes=st.lists(st.integers(1, 5), min_size=12, max_size=12),
    crashes=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_lake_equals_source_after_every_batch(tmp_path_factory, transactions, batch_sizes, crashes):
    """Random inserts, updates leaving large values alone, deletes and key changes, in
    batches of random sizes; a crash before the source is confirmed makes it resend
    everything after the last confirmed transaction, with other batch boundaries."""
    tmp_path = tmp_path_factory.mktemp("toast")
    sent, states = play(transactions)
    confirmed = applied = 0
    table = ReplicatedTable(tmp_path / "lake", "pg", SPEC)
    for size, crash in zip(batch_sizes, crashes, strict=True):
        if applied == len(sent):
            break
        end = min(len(sent), applied + size)
        rows = [row for t in sent[confirmed:end] for row in t]
        result = table.apply(pa.Table.from_pylist(rows, SCHEMA), end * 100)
        assert not result.get("unavailable")
        applied = end
        assert lake_rows(tmp_path) == states[end - 1]
        if crash:  # the process dies before confirming: a new one, resent from `confirmed`
            table = ReplicatedTable(tmp_path / "lake", "pg", SPEC)
        else:
            confirmed = end


def test_set_then_updated_again_in_one_batch_keeps_the_new_large_value(tmp_path):
    """The issue's case: a large value set, then another column updated, in one batch,
    over a lake row that held an older value."""
    table = ReplicatedTable(tmp_path / "lake", "pg", SPEC)
    old = {"id": 1, "title": "a", "body": "old" * 3200, "blob": b"o", OP: UPSERT, SEQ: 100}
    table.apply(pa.Table.from_pylist([old], SCHEMA), 100)
    new_body = "n" * 9600
    batch = [
        {"id": 1, "title": "a", "body": new_body, UNCHANGED_COLUMNS: "blob", OP: UPSERT, SEQ: 200},
        {"id": 1, "title": "b", UNCHANGED_COLUMNS: "body,blob", OP: UPSERT, SEQ: 200},
    ]
    table.apply(pa.Table.from_pylist(batch, SCHEMA), 200)
    assert lake_rows(tmp_path) == {1: {"id": 1, "title": "b", "body": new_body, "blob": b"o"}}


def test_a_value_never_known_gets_the_marker_and_is_counted():
    changes = pa.Table.from_pylist(
        [{"id": 7, "title": "x", UNCHANGED_COLUMNS: "body,blob", OP: UPSERT, SEQ: 5}], SCHEMA
    )
    resolved, unavailable = resolve_unchanged(changes, SPEC, lambda keys, columns: {})
    assert resolved.column_names == ["id", "title", "body", "blob", OP, SEQ]
    assert resolved.to_pylist()[0]["body"] == UNAVAILABLE
    assert resolved.to_pylist()[0]["blob"] == UNAVAILABLE.encode()
    assert unavailable == {"body": 1, "blob": 1}


def test_non_text_columns_get_null_and_are_counted():
    schema = pa.schema([("id", pa.int64()), ("n", pa.int64()), (UNCHANGED_COLUMNS, pa.string())])
    changes = pa.Table.from_pylist([{"id": 1, UNCHANGED_COLUMNS: "n"}], schema)
    changes = changes.append_column(OP, pa.array([UPSERT])).append_column(SEQ, pa.array([1]))
    resolved, unavailable = resolve_unchanged(changes, SPEC, lambda keys, columns: {})
    assert resolved.column("n").to_pylist() == [None] and unavailable == {"n": 1}
