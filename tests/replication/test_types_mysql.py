"""The MariaDB type matrix: every built-in type with edge values, replicated by the snapshot
(the client's text protocol), then changed through the binlog (the binary row image), then
compared value by value with what pymysql reads from the source; a zero date is a recorded
error, never a null."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pymysql
import pymysql.converters
import pytest
from deltalake import DeltaTable

from kirana.replication.lake import table_path, without_views
from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator

pytestmark = [pytest.mark.slow, pytest.mark.server]

ENCODERS_ONLY = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}
"""No decoders: pymysql hands back the server's text as it sent it."""
BITS64 = "b'" + "1" * 64 + "'"
# column, MariaDB type, lake type, three edge values (SQL literals)
MATRIX = [
    ("ti", "tinyint", pa.int32(), ["-128", "127", "0"]),
    ("tiu", "tinyint unsigned", pa.int32(), ["255", "0", "NULL"]),
    ("si", "smallint", pa.int32(), ["-32768", "32767", "0"]),
    ("siu", "smallint unsigned", pa.int32(), ["65535", "0", "1"]),
    ("mi", "mediumint", pa.int32(), ["-8388608", "8388607", "0"]),
    ("miu", "mediumint unsigned", pa.int32(), ["16777215", "0", "1"]),
    ("i", "int", pa.int32(), ["-2147483648", "2147483647", "NULL"]),
    ("iu", "int unsigned", pa.int64(), ["4294967295", "0", "1"]),
    ("bi", "bigint", pa.int64(), ["-9223372036854775808", "9223372036854775807", "0"]),
    ("biu", "bigint unsigned", pa.decimal128(20, 0), ["18446744073709551615", "0", "1"]),
    ("flag", "tinyint(1)", pa.int32(), ["1", "0", "NULL"]),
    ("b1", "bit(1)", pa.int64(), ["b'1'", "b'0'", "NULL"]),
    ("b64", "bit(64)", pa.decimal128(20, 0), [BITS64, "b'0'", "b'101'"]),
    ("fl", "float", pa.float32(), ["3.14159", "-3.40282e38", "1.17549e-38"]),
    ("db", "double", pa.float64(), ["1.7976931348623157e308", "2.2250738585072014e-308", "-0.5"]),
    ("dec", "decimal(10,2)", pa.decimal128(10, 2), ["99999999.99", "-0.01", "0"]),
    ("dec0", "decimal(5,0)", pa.decimal128(5, 0), ["99999", "-99999", "NULL"]),
    (
        "wide",
        "decimal(65,30)",
        pa.string(),
        [
            "'12345678901234567890123456789012345.123456789012345678901234567890'",
            "'-0.000000000000000000000000000001'",
            "0",
        ],
    ),
    ("d", "date", pa.date32(), ["'1000-01-01'", "'9999-12-31'", "'0001-01-01'"]),
    (
        "dt",
        "datetime(6)",
        pa.timestamp("us"),
        ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-02-29 12:00:00.5'"],
    ),
    (
        "dt0",
        "datetime",
        pa.timestamp("us"),
        ["'1000-01-01 00:00:00'", "NULL", "'2024-01-01 00:00:00'"],
    ),
    (
        "ts",
        "timestamp(6) NULL",
        pa.timestamp("us", tz="UTC"),
        ["'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999999'", "NULL"],
    ),
    ("tm", "time", pa.string(), ["'-838:59:59'", "'838:59:59'", "'00:00:00'"]),
    ("tm3", "time(3)", pa.string(), ["'12:34:56.789'", "'-00:00:01.5'", "'00:00:00'"]),
    ("y", "year", pa.int32(), ["1901", "2155", "0"]),
    ("c", "char(5)", pa.string(), ["'ab'", "''", "'abcde'"]),
    ("vc", "varchar(10)", pa.string(), ["'ab '", "''", "'üñï ✓'"]),
    ("tx", "text", pa.string(), ["'line\\nbreak, \"q\"'", "''", "NULL"]),
    ("lt", "longtext", pa.string(), ["'😀 emoji'", "REPEAT('x', 70000)", "''"]),
    ("bn", "binary(4)", pa.binary(), ["'ab'", "x'00ff0000'", "NULL"]),
    ("vb", "varbinary(8)", pa.binary(), ["x'00'", "''", "x'ffffffff'"]),
    ("bl", "blob", pa.binary(), ["x'00ff10'", "''", "NULL"]),
    ("e", "enum('sad','happy')", pa.string(), ["'happy'", "'sad'", "NULL"]),
    ("s", "set('b','a','c')", pa.string(), ["'a,b'", "''", "'c,a'"]),
    ("j", "json", pa.string(), ['\'{"b": 1,  "a": [1, 2.50]}\'', "'[]'", "NULL"]),
]


def _create(server) -> None:
    server.sql("DROP TABLE IF EXISTS type_matrix")
    columns = ", ".join(f"`{name}` {sql_type}" for name, sql_type, _, _ in MATRIX)
    server.sql(f"CREATE TABLE type_matrix (id int PRIMARY KEY, {columns}) DEFAULT CHARSET=utf8mb4")
    for row in range(3):
        values = ", ".join(literals[row] for _, _, _, literals in MATRIX)
        server.sql(f"INSERT INTO type_matrix VALUES ({row + 1}, {values})")


def _source_rows(server, raw: bool) -> list[dict]:
    """The rows as pymysql reads them: typed, or the server's text as it sends it."""
    conn = pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user="root",
        database="kirana",
        init_command="SET time_zone = '+00:00'",
        **({"conv": ENCODERS_ONLY} if raw else {}),
    )
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SELECT * FROM type_matrix ORDER BY id")
            return list(cur.fetchall())
    finally:
        conn.close()


def _expected(value, lake_type: pa.DataType, name: str):
    if value is None:
        return None
    if name in ("b1", "b64"):
        return int.from_bytes(value, "big")  # BIT comes as big-endian bytes
    if lake_type == pa.float32():
        return pa.scalar(value, pa.float32()).as_py()
    if lake_type == pa.string() and isinstance(value, bytes):
        return value.decode()
    if pa.types.is_timestamp(lake_type) and lake_type.tz:
        return pa.scalar(value, lake_type).as_py()
    return value


def _assert_lake_equals_source(server, tmp_path: Path) -> None:
    table = DeltaTable(table_path(tmp_path / "lake", "types", "type_matrix"))
    lake = without_views(pa.table(table.to_pyarrow_table())).sort_by("id")
    typed, text = _source_rows(server, raw=False), _source_rows(server, raw=True)
    assert lake.column("id").to_pylist() == [r["id"] for r in typed]
    for name, sql_type, lake_type, _ in MATRIX:
        assert lake.schema.field(name).type == lake_type, f"{name} ({sql_type})"
        source = text if lake_type == pa.string() else typed
        for row, value in zip(source, lake.column(name).to_pylist(), strict=True):
            expected = _expected(row[name], lake_type, name)
            assert value == expected, (name, sql_type, row["id"], value, expected)


def _replicator(server, tmp_path: Path, name: str, table: str) -> Replicator:
    state = ReplicationState(tmp_path / "state")
    config = parse_source_config(
        {"kind": "mysql", "name": name, "dsn": server.url, "tables": [{"name": table}]}
    )
    state.add(config)
    return Replicator(config, tmp_path / "lake", state, wait_seconds=0.2)


def test_every_type_reads_back_as_the_source_has_it(mariadb_server, tmp_path):
    server = mariadb_server
    _create(server)
    replicator = _replicator(server, tmp_path, "types", "type_matrix")
    assert replicator.run().snapshot_rows == 3
    _assert_lake_equals_source(server, tmp_path)

    columns = ", ".join(f"`{name}`" for name, *_ in MATRIX)
    server.sql(f"INSERT INTO type_matrix SELECT id + 10, {columns} FROM type_matrix")
    assignments = ", ".join(f"t.`{name}` = o.`{name}`" for name, *_ in MATRIX)
    server.sql(
        f"UPDATE type_matrix t JOIN type_matrix o ON o.id = 2 SET {assignments} WHERE t.id = 1"
    )
    server.sql("DELETE FROM type_matrix WHERE id = 3")
    assert replicator.run().rows == 5
    _assert_lake_equals_source(server, tmp_path)


@pytest.mark.parametrize(
    ("sql_type", "value"),
    [("date", "'0000-00-00'"), ("datetime", "'0000-00-00 00:00:00'"), ("date", "'2024-00-10'")],
)
@pytest.mark.parametrize("stage", ["snapshot", "stream"])
def test_a_zero_date_is_a_recorded_error(mariadb_server, tmp_path, sql_type, value, stage):
    server = mariadb_server
    server.sql("DROP TABLE IF EXISTS unfit")
    server.sql(f"CREATE TABLE unfit (id int PRIMARY KEY, v {sql_type} NULL)")
    conn = server.connect("kirana")

    def insert() -> None:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute(f"INSERT INTO unfit VALUES (1, {value})")

    if stage == "snapshot":
        insert()
    replicator = _replicator(server, tmp_path, "unfit", "unfit")
    if stage == "stream":
        replicator.run()
        insert()
    with pytest.raises(ValueError, match=r"column 'unfit\.v'"):
        replicator.run()
    conn.close()
    error = replicator.state.progress("unfit").last_error
    assert "unfit.v" in error and "cannot be represented" in error
