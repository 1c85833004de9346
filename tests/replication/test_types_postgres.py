"""The PostgreSQL type matrix: every built-in type with edge values, replicated by the
snapshot, then changed by streaming, then compared value by value with what psycopg2 reads
from the source; values the lake type cannot hold are a recorded error, never a null."""

from __future__ import annotations

import math
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from kirana.replication.lake import table_path, without_views
from kirana.replication.pgtypes import SESSION_OPTIONS
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

# column, PostgreSQL type, lake type, three edge values (SQL literals)
MATRIX = [
    ("i2", "smallint", pa.int16(), ["-32768", "32767", "0"]),
    ("i4", "integer", pa.int32(), ["-2147483648", "2147483647", "NULL"]),
    ("i8", "bigint", pa.int64(), ["-9223372036854775808", "9223372036854775807", "0"]),
    (
        "dec",
        "numeric(38,10)",
        pa.decimal128(38, 10),
        ["-9999999999999999999999999999.9999999999", "0.0000000001", "0"],
    ),
    ("dec2", "numeric(5,2)", pa.decimal128(5, 2), ["999.99", "-999.99", "0.5"]),
    (
        "num",
        "numeric",
        pa.string(),
        ["'NaN'", "'Infinity'", "'-123456789012345678901234567890.123456789012345678901234567890'"],
    ),
    (
        "wide",
        "numeric(60,5)",
        pa.string(),
        ["'1234567890123456789012345678901234567890123456789012345.12345'", "'-0.00001'", "NULL"],
    ),
    ("f4", "real", pa.float32(), ["'NaN'", "'Infinity'", "'3.4028235e38'"]),
    (
        "f8",
        "double precision",
        pa.float64(),
        ["'-Infinity'", "'5e-324'", "'1.7976931348623157e308'"],
    ),
    ("cash", "money", pa.string(), ["'1234.56'", "'-0.01'", "'92233720368547758.07'"]),
    ("txt", "text", pa.string(), ["''", "E'line\\nbreak, \"quoted\", üñï ✓'", "' spaced  '"]),
    ("vc", "varchar(8)", pa.string(), ["'ab '", "''", "'12345678'"]),
    ("ch", "char(5)", pa.string(), ["'ab'", "''", "'abcde'"]),
    ("bin", "bytea", pa.binary(), ["'\\x00ff10'::bytea", "''::bytea", "NULL"]),
    ("flag", "boolean", pa.bool_(), ["true", "false", "NULL"]),
    ("bits", "bit(4)", pa.string(), ["B'1010'", "B'0000'", "NULL"]),
    ("vbits", "bit varying(8)", pa.string(), ["B'1'", "B''", "B'11111111'"]),
    ("day", "date", pa.date32(), ["'0001-01-01'", "'9999-12-31'", "'2024-02-29'"]),
    ("tm", "time", pa.string(), ["'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'"]),
    ("tm24", "time(3)", pa.string(), ["'24:00:00'", "'00:00:00.123'", "NULL"]),
    ("tmz", "timetz", pa.string(), ["'12:00:00+05:30'", "'00:00:00-12'", "'23:59:59.999999+00'"]),
    (
        "ts",
        "timestamp",
        pa.timestamp("us"),
        ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-03-31 02:30:00'"],
    ),
    (
        "tsz",
        "timestamptz",
        pa.timestamp("us", tz="UTC"),
        [
            "'0001-01-01 00:00:00+00'",
            "'9999-12-31 23:59:59.999999+00'",
            "'2024-06-01 12:00:00.000001+05:30'",
        ],
    ),
    (
        "span",
        "interval",
        pa.string(),
        ["'1 year 2 months 3 days 04:05:06.789'", "'-1 day +01:00'", "'0'"],
    ),
    (
        "uid",
        "uuid",
        pa.string(),
        [
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'00000000-0000-0000-0000-000000000000'",
            "NULL",
        ],
    ),
    ("doc", "json", pa.string(), ['\'{"b": 1,  "a": [1, 2.50]}\'', "'null'", "'\"x\"'"]),
    ("docb", "jsonb", pa.string(), ['\'{"b": 1,  "a": [1, 2.50]}\'', "'[]'", '\'{"k": "ü"}\'']),
    ("ints", "integer[]", pa.string(), ["'{1,NULL,3}'", "'{}'", "'{{1,2},{3,4}}'"]),
    ("texts", "text[]", pa.string(), ['\'{"a b","c,d",NULL}\'', "'{\"\"}'", "'[0:1]={x,y}'"]),
    ("mood", "kirana_mood", pa.string(), ["'happy'", "'sad'", "NULL"]),
    ("pos", "kirana_positive", pa.int32(), ["1", "2147483647", "NULL"]),
    ("price", "kirana_price", pa.decimal128(6, 2), ["9999.99", "0.01", "NULL"]),
    ("rng", "int4range", pa.string(), ["'[1,5)'", "'empty'", "'(,10]'"]),
    ("trng", "tstzrange", pa.string(), ["'[2024-01-01 00:00+00,infinity)'", "NULL", "'empty'"]),
    ("ip", "inet", pa.string(), ["'192.168.0.1/24'", "'::1'", "'10.0.0.1'"]),
    ("net", "cidr", pa.string(), ["'10.0.0.0/8'", "'2001:db8::/32'", "NULL"]),
    ("mac", "macaddr", pa.string(), ["'08:00:2b:01:02:03'", "'ff:ff:ff:ff:ff:ff'", "NULL"]),
    ("mac8", "macaddr8", pa.string(), ["'08:00:2b:01:02:03:04:05'", "NULL", "NULL"]),
]


def _create(pg) -> None:
    pg.sql("DROP TABLE IF EXISTS type_matrix")
    pg.sql("DROP DOMAIN IF EXISTS kirana_positive")
    pg.sql("DROP DOMAIN IF EXISTS kirana_price")
    pg.sql("DROP TYPE IF EXISTS kirana_mood")
    pg.sql("CREATE TYPE kirana_mood AS ENUM ('sad', 'happy')")
    pg.sql("CREATE DOMAIN kirana_positive AS integer CHECK (VALUE > 0)")
    pg.sql("CREATE DOMAIN kirana_price AS numeric(6,2)")
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type, _, _ in MATRIX)
    pg.sql(f"CREATE TABLE type_matrix (id int PRIMARY KEY, {columns})")
    for row in range(3):
        values = ", ".join(literals[row] for _, _, _, literals in MATRIX)
        pg.sql(f"INSERT INTO type_matrix VALUES ({row + 1}, {values})")


def _source_rows(pg) -> tuple[list[dict], list[dict]]:
    """The rows as psycopg2 reads them (typed), and as PostgreSQL prints them (text)."""
    conn = psycopg2.connect(pg.dsn, options=SESSION_OPTIONS)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM type_matrix ORDER BY id")
            names = [d.name for d in cur.description]
            typed = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            oids = {d.type_code for d in cur.description}
        raw = psycopg2.extensions.new_type(tuple(oids), "RAW", lambda value, _cursor: value)
        with conn.cursor() as cur:
            psycopg2.extensions.register_type(raw, cur)
            cur.execute("SELECT * FROM type_matrix ORDER BY id")
            text = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return typed, text
    finally:
        conn.close()


def _same(lake_value, source_value, lake_type: pa.DataType) -> bool:
    if lake_value is None or source_value is None:
        return lake_value is None and source_value is None
    if pa.types.is_floating(lake_type) and math.isnan(source_value):
        return math.isnan(lake_value)
    if lake_type == pa.float32():
        return pa.scalar(source_value, pa.float32()).as_py() == lake_value
    if lake_type == pa.binary():
        return bytes(source_value) == lake_value
    return lake_value == source_value


def _assert_lake_equals_source(pg, tmp_path: Path) -> None:
    table = DeltaTable(table_path(tmp_path / "lake", "types", "type_matrix"))
    lake = without_views(pa.table(table.to_pyarrow_table())).sort_by("id")
    typed, text = _source_rows(pg)
    assert lake.column("id").to_pylist() == [r["id"] for r in typed]
    for name, sql_type, lake_type, _ in MATRIX:
        assert lake.schema.field(name).type == lake_type, f"{name} ({sql_type})"
        source = text if lake_type == pa.string() else typed
        for row, value in zip(source, lake.column(name).to_pylist(), strict=True):
            assert _same(value, row[name], lake_type), (name, sql_type, row["id"], value, row[name])


def test_every_type_reads_back_as_the_source_has_it(postgres_server, tmp_path):
    pg = postgres_server
    _create(pg)
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": "types", "dsn": pg.dsn, "tables": [{"name": "type_matrix"}]}
    )
    state.add(config)
    replicator = Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)
    assert replicator.run().snapshot_rows == 3
    _assert_lake_equals_source(pg, tmp_path)

    columns = ", ".join(name for name, *_ in MATRIX)
    pg.sql(f"INSERT INTO type_matrix SELECT id + 10, {columns} FROM type_matrix")
    assignments = ", ".join(f"{name} = o.{name}" for name, *_ in MATRIX)
    pg.sql(f"UPDATE type_matrix t SET {assignments} FROM type_matrix o WHERE t.id = 1 AND o.id = 2")
    pg.sql("DELETE FROM type_matrix WHERE id = 3")
    assert replicator.run().rows == 5
    _assert_lake_equals_source(pg, tmp_path)


@pytest.mark.parametrize(
    ("sql_type", "value"),
    [
        ("date", "'infinity'"),
        ("timestamptz", "'-infinity'"),
        ("timestamp", "'0044-03-15 12:00:00 BC'"),
        ("numeric(8,2)", "'NaN'"),
    ],
)
def test_a_value_the_lake_cannot_hold_is_a_recorded_error(
    postgres_server, tmp_path, sql_type, value
):
    pg = postgres_server
    pg.sql("DROP TABLE IF EXISTS unfit")
    pg.sql(f"CREATE TABLE unfit (id int PRIMARY KEY, v {sql_type})")
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "postgres", "name": "unfit", "dsn": pg.dsn, "tables": [{"name": "unfit"}]}
    )
    state.add(config)
    replicator = Replicator(config, tmp_path / "lake", state, wait_seconds=0.3)
    replicator.run()
    pg.sql(f"INSERT INTO unfit VALUES (1, {value})")
    with pytest.raises(ValueError, match=r"column 'unfit\.v'"):
        replicator.run()
    error = state.progress("unfit").last_error
    assert "unfit.v" in error and value.strip("'").split()[0] in error
    with pytest.raises(ValueError, match="cannot be represented"):
        replicator.run()  # still refused, the value is not skipped; nothing applied
    lake = DeltaTable(table_path(tmp_path / "lake", "unfit", "unfit")).to_pyarrow_table()
    assert lake.num_rows == 0
