"""Checks that a SQL audience only reads the segment relations.

Three layers, cheapest first, so the error says what is wrong:

1. DuckDB's own parser (``duckdb.extract_statements``): exactly one statement,
   of type SELECT (a WITH query is a SELECT);
2. no data-changing keyword outside string literals and comments: DuckDB
   parses ``WITH d AS (DELETE ... RETURNING *) SELECT ...`` as a SELECT;
3. binding (not running) the query, wrapped as the compiler wraps it, on a
   private in-memory database holding empty relations of the contract schema,
   with file and network access disabled and the configuration locked: unknown
   tables or columns, file readers (``read_csv``, ``FROM 'x.csv'``) and a
   missing ``profile_id`` column are refused before the query ever runs.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import duckdb

from kirana.segments.rules import DefinitionError

RELATIONS = (
    "CREATE TABLE profile_events (profile_id VARCHAR, message_id VARCHAR, type VARCHAR, "
    "event VARCHAR, timestamp TIMESTAMPTZ, properties VARCHAR)",
    "CREATE TABLE profiles (profile_id VARCHAR, traits VARCHAR)",
    "CREATE TABLE computed_traits (profile_id VARCHAR, name VARCHAR, value VARCHAR)",
    "CREATE TABLE audience_members (audience VARCHAR, profile_id VARCHAR)",
)
MAX_LENGTH = 20_000

_QUOTED = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$", re.DOTALL
)
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|copy|create|drop|alter|attach|detach|install|load|"
    r"pragma|call|export|import|vacuum|checkpoint|truncate|set|reset|grant|revoke)\b",
    re.IGNORECASE,
)


def check_sql(sql: Any, path: str = "sql") -> str:
    """Return the query without its trailing ``;``, or raise :class:`DefinitionError`."""
    if not isinstance(sql, str) or not sql.strip() or len(sql) > MAX_LENGTH or "\0" in sql:
        raise DefinitionError(path, f"must be a non-empty SQL query of at most {MAX_LENGTH} chars")
    cursor = _checker_db().cursor()  # its own connection: safe from any thread
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        raise DefinitionError(path, f"does not parse: {_first_line(exc)}") from None
    finally:
        cursor.close()
    if len(statements) != 1:
        raise DefinitionError(path, f"must be a single statement, found {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise DefinitionError(path, f"must be a SELECT or WITH query, not {kind.name}")
    query = _without_terminator(sql)
    found = _WRITES.search(_QUOTED.sub(" ", query))
    if found:
        rule = f"must only read data: {found.group(1).upper()} is not allowed (quote it if a name)"
        raise DefinitionError(path, rule)
    columns = _bind(query, path)
    if "profile_id" not in (c.lower() for c in columns):
        raise DefinitionError(path, f"must return a profile_id column (returns {columns})")
    return query


def wrap(query: str) -> str:
    """The query as a subquery; newlines keep a trailing ``--`` comment from eating the ``)``."""
    return f"(\n{query}\n)"


_checker: duckdb.DuckDBPyConnection | None = None
_checker_lock = threading.Lock()


def _checker_db() -> duckdb.DuckDBPyConnection:
    """The private database SQL audiences are bound against (made once; 20 ms to open)."""
    global _checker
    with _checker_lock:
        if _checker is None:
            conn = duckdb.connect(":memory:", config={"enable_external_access": False})
            for ddl in RELATIONS:
                conn.execute(ddl)
            conn.execute("SET lock_configuration = true")
            _checker = conn
        return _checker


def _bind(query: str, path: str) -> list[str]:
    cursor = _checker_db().cursor()  # its own connection: safe from any thread
    try:
        rows = cursor.execute(f"DESCRIBE SELECT * FROM {wrap(query)} AS q").fetchall()
    except duckdb.Error as exc:
        rule = f"does not run against the segment relations: {_first_line(exc)}"
        raise DefinitionError(path, rule) from None
    finally:
        cursor.close()
    return [r[0] for r in rows]


def _without_terminator(sql: str) -> str:
    """``sql`` without trailing semicolons and the comments and blanks around them."""
    comments = {m.end(): m.start() for m in _QUOTED.finditer(sql) if m.group(0)[:2] in ("--", "/*")}
    end = len(sql)
    while True:
        end = len(sql[:end].rstrip())
        if end in comments:
            end = comments[end]
        elif sql[:end].endswith(";"):
            end -= 1
        else:
            return sql[:end].lstrip()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
