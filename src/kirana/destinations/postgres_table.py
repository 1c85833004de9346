"""PostgreSQL table: upsert by key, delete on ``delete``, one transaction per batch.

The table is created on first use (key column as primary key, one column per
field, typed from the first value seen) and gains columns as new fields
appear, unless ``create_table`` is off — then unknown fields are a permanent
error naming the column. Applying a batch twice leaves the same rows.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from kirana.destinations.config import PostgresSettings
from kirana.destinations.errors import PermanentError, RetryableError
from kirana.destinations.records import OutboundRecord

RECORD_ID_COLUMN = "_kirana_record_id"


def column_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def _param(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


class PostgresTableDestination:
    def __init__(self, settings: PostgresSettings) -> None:
        self._s = settings
        self._conn: psycopg.Connection | None = None
        self._columns: dict[str, str] | None = None

    def _connect(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._s.dsn, connect_timeout=10)
            self._columns = None
        return self._conn

    def _table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self._s.schema_name), sql.Identifier(self._s.table)
        )

    def _load_columns(self, conn: psycopg.Connection) -> dict[str, str]:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (self._s.schema_name, self._s.table),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def _ensure(self, conn: psycopg.Connection, records: Sequence[OutboundRecord]) -> None:
        if self._columns is None:
            self._columns = self._load_columns(conn)
        if not self._columns:
            if not self._s.create_table:
                raise PermanentError(
                    f"table {self._s.schema_name}.{self._s.table} does not exist; create it "
                    "or set settings.create_table = true"
                )
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self._s.schema_name)
                )
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ({} text PRIMARY KEY, {} text, "
                    "_kirana_updated_at timestamptz DEFAULT now())"
                ).format(
                    self._table(),
                    sql.Identifier(self._s.key_column),
                    sql.Identifier(RECORD_ID_COLUMN),
                )
            )
            self._columns = self._load_columns(conn)
        wanted: dict[str, str] = {}
        for record in records:
            for name, value in record.data.items():
                if name not in self._columns and name not in wanted and value is not None:
                    wanted[name] = column_type(value)
                elif name not in self._columns and name not in wanted:
                    wanted.setdefault(name, "text")
        if not wanted:
            return
        if not self._s.create_table:
            raise PermanentError(
                f"columns {sorted(wanted)} are not in {self._s.schema_name}.{self._s.table}; "
                "add them or leave them out of the mapping"
            )
        for name, kind in wanted.items():
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} " + kind).format(
                    self._table(), sql.Identifier(name)
                )
            )
            self._columns[name] = kind

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        try:
            conn = self._connect()
            with conn.transaction():
                self._ensure(conn, [r for r in records if r.action != "delete"])
                for record in records:
                    self._apply(conn, record)
        except PermanentError:
            self._columns = None
            raise
        except psycopg.OperationalError as exc:
            self._drop()
            raise RetryableError(f"PostgreSQL unavailable: {exc}", outage=True) from exc
        except psycopg.Error as exc:
            self._columns = None
            raise PermanentError(f"PostgreSQL refused the batch: {exc}") from exc

    def _apply(self, conn: psycopg.Connection, record: OutboundRecord) -> None:
        key = sql.Identifier(self._s.key_column)
        if record.action == "delete":
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = %s").format(self._table(), key), (record.key,)
            )
            return
        fields = [k for k in record.data if k != self._s.key_column]
        names = [self._s.key_column, RECORD_ID_COLUMN, *fields]
        values = [record.key, record.record_id, *(_param(record.data[f]) for f in fields)]
        conflict = (
            sql.SQL("DO NOTHING")
            if record.action == "insert"
            else sql.SQL("DO UPDATE SET {}, _kirana_updated_at = now()").format(
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names[1:]
                )
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
                self._table(),
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
                key,
                conflict,
            ),
            values,
        )

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self._drop()
