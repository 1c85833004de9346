"""The profile store on PostgreSQL: for more profiles than one SQLite file holds."""

from __future__ import annotations

from kirana.identity.store import SQLProfileStore


class PostgresProfileStore(SQLProfileStore):
    """Same SQL as SQLite, through psycopg 3, in a schema of its own."""

    marker = "%s"

    def __init__(self, dsn: str, schema: str = "kirana") -> None:
        import psycopg

        conn = psycopg.connect(dsn, autocommit=False)
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cur.execute(f'SET search_path TO "{schema}"')
        conn.commit()
        super().__init__(conn)

    def compact_storage(self) -> None:
        """PostgreSQL reclaims dead tuples itself (autovacuum); force it for erasures."""
        self._conn.commit()
        self._conn.autocommit = True
        try:
            for table in ("identities", "identity_traits", "identity_links", "profile_merges"):
                self._conn.execute(f"VACUUM {table}")
        finally:
            self._conn.autocommit = False
