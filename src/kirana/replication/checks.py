"""Refuse, when a source is added, tables the first sync would refuse.

Otherwise a keyless table surfaces as a sync that fails every few seconds inside
``kirana serve``. Only the tables are checked here, read-only (no slot, no
publication). Not refused: a table that does not exist yet (it may be created
before the first sync) and a source that cannot be reached (``kirana sources
add-postgres`` checks the connection itself); either shows as the sync's error in
``kirana sources status``.
"""

from __future__ import annotations

import logging

from kirana.redaction import scrub
from kirana.replication.specs import secret_values
from kirana.replication.state import AnyConfig

log = logging.getLogger(__name__)


class TableRefused(ValueError):
    """A table the source cannot replicate (no key, deletes that would not carry the key)."""


def check_tables(config: AnyConfig) -> None:
    """Raise TableRefused naming the table and the fix; return quietly if unreachable."""
    if config.kind == "postgres":
        _check_postgres(config)
    elif config.kind == "mysql":
        _check_mysql(config)


def _check_postgres(config) -> None:
    import psycopg2

    from kirana.replication.postgres import MissingTable, describe_tables

    try:
        conn = psycopg2.connect(config.dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        _unreachable(config, exc)
        return
    try:
        for table in config.tables:
            try:
                describe_tables(conn, config.model_copy(update={"tables": [table]}))
            except MissingTable:
                log.warning("source %s: table %s does not exist yet", config.name, table.name)
            except ValueError as exc:
                raise TableRefused(str(exc)) from None
    finally:
        conn.close()


def _check_mysql(config) -> None:
    import pymysql

    database = config.database()
    try:
        conn = pymysql.connect(**config.connection(), database=database, connect_timeout=10)
    except pymysql.Error as exc:
        _unreachable(config, exc)
        return
    try:
        with conn.cursor() as cur:
            for table in config.tables:
                name = table.name.rpartition(".")[2]
                cur.execute(
                    "SELECT count(*), sum(column_key = 'PRI') FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name = %s",
                    (database, name),
                )
                columns, primary = cur.fetchone()
                if not columns:
                    log.warning("source %s: table %s does not exist yet", config.name, name)
                elif not table.key and not primary:
                    raise TableRefused(
                        f"table {database}.{name} has no primary key: give `key` columns"
                        " (`--key TABLE=COLUMN`) or add a primary key"
                    )
    finally:
        conn.close()


def _unreachable(config: AnyConfig, exc: Exception) -> None:
    message = scrub(f"{type(exc).__name__}: {exc}", secret_values(config))
    log.warning(
        "source %s: tables not checked, the database is unreachable: %s", config.name, message
    )
