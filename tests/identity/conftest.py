"""Profile-store backends for contract tests: SQLite always, PostgreSQL when reachable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kirana.identity.sqlite_store import SQLiteProfileStore
from kirana.identity.store import SQLProfileStore

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def postgres_reason() -> str | None:
    try:
        import psycopg

        psycopg.connect(POSTGRES_DSN).close()
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc.__class__.__name__}: {exc})"
    return None


@pytest.fixture(params=["sqlite", "postgres"])
def profile_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLProfileStore]:
    if request.param == "sqlite":
        store = SQLiteProfileStore(tmp_path / "profiles.sqlite")
        yield store
        store.close()
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    from kirana.identity.postgres_store import PostgresProfileStore

    schema = f"test_{uuid.uuid4().hex[:12]}"
    store = PostgresProfileStore(POSTGRES_DSN, schema=schema)
    yield store
    store.close()
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
