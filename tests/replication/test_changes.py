"""The pure parts: collapsing changes, the pgoutput decoder, PostgreSQL text values; and the
lake table's exactly-once rule."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.replication import pgoutput
from kirana.replication.changes import DELETE, OP, SEQ, UPSERT, TableSpec, newest_per_key
from kirana.replication.lake import ReplicatedTable, changes_since
from kirana.replication.pgtypes import NUMERIC, TIMESTAMPTZ, arrow_type, from_text

# -- collapsing a batch ---------------------------------------------------------------


def reference(changes: list[dict], spec: TableSpec) -> dict:
    """Apply one change at a time; the newest version per key wins (deletes included)."""

    def version(row: dict, arrival: int) -> tuple:
        pre = row.get(spec.precombine) if spec.precombine else None
        head = (pre is not None, pre if pre is not None else 0) if spec.precombine else ()
        return (*head, row[SEQ], arrival)

    state: dict = {}
    for arrival, row in enumerate(changes):
        key = tuple(row[k] for k in spec.key)
        if key not in state or version(row, arrival) > state[key][0]:
            state[key] = (version(row, arrival), row)
    return {k: v[1]["value"] for k, v in state.items() if v[1][OP] != DELETE}


change = st.fixed_dictionaries(
    {
        "id": st.integers(0, 5),
        "value": st.integers(-(2**63), 2**63 - 1),
        "ver": st.one_of(st.none(), st.integers(0, 3)),
        OP: st.sampled_from([UPSERT, UPSERT, DELETE]),
        SEQ: st.integers(0, 4),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(change, max_size=30), st.booleans())
def test_newest_per_key_is_the_one_at_a_time_result(changes, with_precombine):
    spec = TableSpec("t", ("id",), "ver" if with_precombine else None)
    table = pa.Table.from_pylist(
        changes,
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("value", pa.int64()),
                ("ver", pa.int64()),
                (OP, pa.string()),
                (SEQ, pa.int64()),
            ]
        ),
    )
    collapsed = newest_per_key(table, spec).to_pylist()
    assert len({r["id"] for r in collapsed}) == len(collapsed)
    got = {(r["id"],): r["value"] for r in collapsed if r[OP] != DELETE}
    assert got == reference(changes, spec)


# -- pgoutput --------------------------------------------------------------------------


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(values: list) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is pgoutput.UNCHANGED:
            out += b"u"
        else:
            raw = v.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


value = st.one_of(st.none(), st.just(pgoutput.UNCHANGED), st.text(max_size=20))
names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 2**32 - 1), names, names, st.lists(st.tuples(names, st.booleans()), max_size=6)
)
def test_relation_round_trip(oid, namespace, name, columns):
    body = b"R" + struct.pack(">I", oid) + _string(namespace) + _string(name) + b"d"
    body += struct.pack(">h", len(columns))
    for i, (col, key) in enumerate(columns):
        body += bytes([int(key)]) + _string(col) + struct.pack(">Ii", 23 + i, -1)
    decoded = pgoutput.decode(body)
    assert decoded == pgoutput.Relation(
        oid,
        namespace,
        name,
        "d",
        tuple(pgoutput.Column(c, 23 + i, -1, k) for i, (c, k) in enumerate(columns)),
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**31), st.lists(value, max_size=8), st.lists(value, max_size=8), st.booleans()
)
def test_update_round_trip_and_truncations_fail_cleanly(oid, old, new, with_old):
    body = b"U" + struct.pack(">I", oid)
    if with_old:
        body += b"O" + _tuple(old)
    body += b"N" + _tuple(new)
    decoded = pgoutput.decode(body)
    assert decoded == pgoutput.Update(
        oid, "O" if with_old else None, tuple(old) if with_old else None, tuple(new)
    )
    for cut in range(len(body)):
        with pytest.raises(pgoutput.ProtocolError):
            pgoutput.decode(body[:cut])


def test_begin_commit_delete_truncate():
    micros = 86_400_000_000  # one day after 2000-01-01
    begin = pgoutput.decode(b"B" + struct.pack(">QqI", 0x16B3748, micros, 733))
    assert begin == pgoutput.Begin(0x16B3748, datetime(2000, 1, 2, tzinfo=UTC), 733)
    commit = pgoutput.decode(b"C\0" + struct.pack(">QQq", 10, 20, micros))
    assert (commit.commit_lsn, commit.end_lsn) == (10, 20)
    delete = pgoutput.decode(b"D" + struct.pack(">I", 5) + b"K" + _tuple(["7", None]))
    assert delete == pgoutput.Delete(5, "K", ("7", None))
    truncate = pgoutput.decode(b"T" + struct.pack(">ib", 2, 0) + struct.pack(">II", 5, 6))
    assert truncate == pgoutput.Truncate(0, (5, 6))
    with pytest.raises(pgoutput.ProtocolError, match="unknown pgoutput message type"):
        pgoutput.decode(b"Z")
    assert pgoutput.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert pgoutput.format_lsn(pgoutput.parse_lsn("16/B374D848")) == "16/B374D848"


# -- PostgreSQL text ---------------------------------------------------------------------


def test_text_values_become_typed_arrow():
    numeric = arrow_type(NUMERIC, ((10 << 16) | 2) + 4)
    assert numeric == pa.decimal128(10, 2)
    assert from_text(["1.50", None], numeric).to_pylist() == [Decimal("1.50"), None]
    assert arrow_type(NUMERIC, -1) == pa.string()  # unconstrained: kept exact as text
    stamps = from_text(
        ["2024-03-01 10:00:00+00", "2024-03-01 12:30:00.5+02"], arrow_type(TIMESTAMPTZ)
    )
    assert stamps.to_pylist() == [
        datetime(2024, 3, 1, 10, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 30, 0, 500000, tzinfo=UTC),
    ]
    assert from_text(["t", "f", None], pa.bool_()).to_pylist() == [True, False, None]
    assert from_text(["\\x00ff"], pa.binary()).to_pylist() == [b"\x00\xff"]
    with pytest.raises(ValueError, match="cannot be represented as int32"):
        from_text(["twelve"], pa.int32())


# -- exactly once into Delta -------------------------------------------------------------------


def test_a_replayed_batch_changes_nothing(tmp_path):
    table = ReplicatedTable(tmp_path, "src", TableSpec("t", ("id",)))
    batch = pa.table({"id": [1, 2, 1], "v": ["a", "b", "c"], OP: [UPSERT] * 3, SEQ: [10, 10, 11]})
    table.apply(batch, 11)
    version = table.version()
    assert table.apply(batch, 11) == {"skipped": 3}
    assert table.version() == version
    # a batch that straddles the applied position only applies what is newer
    table.apply(pa.table({"id": [2, 3], "v": ["old", "new"], OP: [UPSERT] * 2, SEQ: [11, 12]}), 12)
    feed = changes_since(table.path, version)
    assert [(r["_change_type"], r["id"]) for r in feed.to_pylist()] == [("insert", 3)]
    assert table.applied_position() == 12
