"""DuckDB relations that computed traits and audiences are compiled against.

``profile_events``: lake events attributed to profiles (an event with a user id
belongs to that user's profile; otherwise to its anonymous id's profile);
``profiles``: every profile with its traits (last write wins per trait);
``computed_traits`` and ``audience_members``: the current values.
Identities and traits come from the profile store as Arrow tables, because
DuckDB's SQLite/PostgreSQL scanners are extensions that cannot be fetched on
every machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from kirana.identity.store import SQLProfileStore

_PROFILE_EVENTS = """
CREATE OR REPLACE TEMP TABLE profile_events AS
SELECT coalesce(u.profile_id, a.profile_id) AS profile_id,
       e.message_id, e.type, e.event, e.timestamp, e.properties, e.log_offset
FROM lake_events e
LEFT JOIN identities u ON u.id_type = 'user_id' AND u.id_value = e.user_id
LEFT JOIN identities a ON e.user_id IS NULL AND a.id_type = 'anonymous_id'
                      AND a.id_value = e.anonymous_id
WHERE coalesce(u.profile_id, a.profile_id) IS NOT NULL {restrict}
"""

_PROFILES = """
CREATE OR REPLACE TEMP TABLE profiles AS
WITH latest AS (
    SELECT profile_id, trait, value FROM identity_traits
    QUALIFY row_number() OVER (PARTITION BY profile_id, trait ORDER BY ts DESC, message_id DESC) = 1
), traits AS (
    SELECT profile_id, CAST(json_group_object(trait, CAST(value AS JSON)) AS VARCHAR) AS traits
    FROM latest GROUP BY profile_id
)
SELECT p.profile_id, coalesce(t.traits, '{{}}') AS traits
FROM (SELECT DISTINCT profile_id FROM identities) p
LEFT JOIN traits t ON t.profile_id = p.profile_id
WHERE true {restrict}
"""


def segment_connection(
    store: SQLProfileStore, lake_dir: Path, only_profiles: Iterable[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection holding the four relations (restricted to ``only_profiles`` if given)."""
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.register("identities", store.export_identities())
    scope = list(only_profiles) if only_profiles is not None else None
    conn.register("identity_traits", store.export_identity_traits(scope))
    events_path = lake_dir / "events"
    if (events_path / "_delta_log").is_dir():
        conn.register("lake_events", DeltaTable(events_path).to_pyarrow_dataset())
    else:
        conn.execute(
            "CREATE TEMP TABLE lake_events (message_id VARCHAR, type VARCHAR, event VARCHAR, "
            "user_id VARCHAR, anonymous_id VARCHAR, timestamp TIMESTAMPTZ, properties VARCHAR, "
            "log_offset BIGINT)"
        )
    restrict_events = restrict_profiles = ""
    if only_profiles is not None:
        conn.register(
            "only_profiles", pa.table({"profile_id": pa.array(list(only_profiles), pa.string())})
        )
        restrict_events = (
            "AND coalesce(u.profile_id, a.profile_id) IN (SELECT profile_id FROM only_profiles)"
        )
        restrict_profiles = "AND p.profile_id IN (SELECT profile_id FROM only_profiles)"
    conn.execute(_PROFILE_EVENTS.format(restrict=restrict_events))
    conn.execute(_PROFILES.format(restrict=restrict_profiles))
    refresh_values(conn, store, scope)
    # definitions (SQL audiences included) run with no access to files or the network
    conn.execute("SET enable_external_access = false")
    return conn


def refresh_values(
    conn: duckdb.DuckDBPyConnection, store: SQLProfileStore, scope: list[str] | None = None
) -> None:
    """Load computed traits and memberships (of ``scope``) into tables refresh steps update."""
    conn.register("_computed_export", store.export_computed_values(scope))
    conn.register("_members_export", store.export_memberships(scope))
    conn.execute("CREATE OR REPLACE TEMP TABLE computed_traits AS SELECT * FROM _computed_export")
    conn.execute("CREATE OR REPLACE TEMP TABLE audience_members AS SELECT * FROM _members_export")
    conn.unregister("_computed_export")
    conn.unregister("_members_export")


def replace_in_scope(
    conn: duckdb.DuckDBPyConnection, table: str, key_column: str, key: str, rows: pa.Table
) -> None:
    """Swap one trait's values (or one audience's members) for the profiles in scope.

    ``profiles`` holds exactly the profiles this refresh considers, so rows of
    profiles outside it are left alone.
    """
    conn.execute(
        f"DELETE FROM {table} WHERE {key_column} = ? "
        "AND profile_id IN (SELECT profile_id FROM profiles)",
        [key],
    )
    conn.register("_rows", rows)
    columns = "profile_id, name, value" if table == "computed_traits" else "audience, profile_id"
    select = "profile_id, ?, value" if table == "computed_traits" else "?, profile_id"
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT {select} FROM _rows", [key])
    conn.unregister("_rows")


def affected_profiles(
    store: SQLProfileStore,
    lake_dir: Path,
    *,
    after_offset: int,
    bands: list[tuple[datetime, datetime]],
) -> tuple[list[str], int]:
    """Profiles whose values may have changed, and the lake's newest log offset.

    A profile is affected when it has an event loaded after ``after_offset``,
    or an event whose timestamp lies in one of ``bands`` (the stretch of time
    that slid out of some window since the previous refresh).
    """
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.register("identities", store.export_identities())
    events_path = lake_dir / "events"
    if not (events_path / "_delta_log").is_dir():
        return [], after_offset
    conn.register("lake_events", DeltaTable(events_path).to_pyarrow_dataset())
    band_sql = " OR ".join("(e.timestamp > ? AND e.timestamp <= ?)" for _ in bands) or "false"
    args: list[object] = [after_offset]
    for start, end in bands:
        args.extend([start, end])
    rows = conn.execute(
        "SELECT DISTINCT coalesce(u.profile_id, a.profile_id) FROM lake_events e "
        "LEFT JOIN identities u ON u.id_type = 'user_id' AND u.id_value = e.user_id "
        "LEFT JOIN identities a ON e.user_id IS NULL AND a.id_type = 'anonymous_id' "
        "AND a.id_value = e.anonymous_id "
        f"WHERE (e.log_offset > ? OR {band_sql}) "
        "AND coalesce(u.profile_id, a.profile_id) IS NOT NULL",
        args,
    ).fetchall()
    [(newest,)] = conn.execute(
        "SELECT coalesce(max(log_offset), ?) FROM lake_events", [after_offset]
    ).fetchall()
    return [r[0] for r in rows], int(newest)
