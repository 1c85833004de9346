"""Source definitions: every bad value is refused with the field and the rule."""

from __future__ import annotations

import pytest

from kirana.lake.catalog import sql_name
from kirana.replication.specs import parse_source_config, redacted


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            {"kind": "files", "name": "Bad Name", "path": "/x", "format": "csv", "key": ["id"]},
            "`name`: String should match pattern",
        ),
        ({"kind": "files", "name": "a", "path": "/x", "format": "xml", "key": ["id"]}, "`format`"),
        (
            {"kind": "files", "name": "a", "path": "/x", "format": "csv", "key": []},
            "`key`: List should have at least 1 item",
        ),
        (
            {"kind": "mysql", "name": "a", "dsn": "root@db", "tables": [{"name": "t"}]},
            "`dsn`: Value error, must look like mysql://",
        ),
        (
            {"kind": "postgres", "name": "a", "dsn": "x", "tables": []},
            "`tables`: List should have at least 1 item",
        ),
        (
            {"kind": "postgres", "name": "a", "dsn": "x", "tables": [{"name": "a.b.c"}]},
            "`tables.0.name`: Value error, must be `table` or `schema.table`",
        ),
        (
            {
                "kind": "postgres",
                "name": "a",
                "dsn": "x",
                "tables": [{"name": "t", "precombine": "v"}],
            },
            "`precombine` applies to file drops",
        ),
        ({"kind": "oracle", "name": "a"}, "`source`"),
    ],
)
def test_bad_definitions_name_the_field(definition, message):
    with pytest.raises(ValueError) as caught:
        parse_source_config(definition)
    assert message in str(caught.value)


def test_passwords_are_hidden():
    mysql = parse_source_config(
        {
            "kind": "mysql",
            "name": "a",
            "dsn": "mysql://repl:s3cret@db:3306/shop",
            "tables": [{"name": "t"}],
        }
    )
    assert redacted(mysql)["dsn"] == "mysql://repl:***@db:3306/shop"
    assert mysql.connection() == {"host": "db", "port": 3306, "user": "repl", "password": "s3cret"}
    pg = parse_source_config(
        {
            "kind": "postgres",
            "name": "a",
            "dsn": "host=db password=s3cret dbname=x",
            "tables": [{"name": "t"}],
        }
    )
    assert "s3cret" not in redacted(pg)["dsn"]


def test_lake_folders_become_sql_names():
    from pathlib import Path

    assert sql_name(Path("events")) == "events"
    assert sql_name(Path("replicated/shop/customers")) == "shop_customers"
    assert sql_name(Path("models/recs")) == "models_recs"
