"""Where a sync's rows come from: a query over the lake, or an audience's members."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from kirana.destinations.config import ConfigError
from kirana.identity.store import SQLProfileStore
from kirana.profiles.audience_events import identity_index
from kirana.syncs.model import SyncSource


def query_lake(lake_dir: Path, sql: str) -> pa.Table:
    """Run ``sql`` over every lake table (by name); a bad query names the problem."""
    from kirana.lake.catalog import connect

    conn = connect(lake_dir)
    try:
        return conn.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise ConfigError(
            f"`source.sql` failed: {exc}. Tables available: see `kirana sql` (SHOW TABLES)"
        ) from exc
    finally:
        conn.close()


def audience_members(store: SQLProfileStore, audience: str) -> pa.Table:
    """One row per member: profile_id, user_id, anonymous_id, email (where known)."""
    if not any(d.name == audience for d in store.definitions("audience")):
        raise ConfigError(f"`source.audience`: no audience named {audience!r}")
    members = sorted(store.members(audience))
    index = identity_index(store.export_identities())
    emails: dict[str, str] = {}
    if members:
        traits = store.export_identity_traits(members)
        for pid, trait, value in zip(
            traits.column("profile_id").to_pylist(),
            traits.column("trait").to_pylist(),
            traits.column("value").to_pylist(),
            strict=True,
        ):
            if trait == "email" and value:
                emails[pid] = value.strip('"')
    user_ids, anonymous_ids = [], []
    for pid in members:
        id_type, value = index.get(pid, ("", ""))
        user_ids.append(value if id_type == "user_id" else None)
        anonymous_ids.append(value if id_type == "anonymous_id" else None)
    return pa.table(
        {
            "profile_id": pa.array(members, pa.string()),
            "user_id": pa.array(user_ids, pa.string()),
            "anonymous_id": pa.array(anonymous_ids, pa.string()),
            "email": pa.array([emails.get(p) for p in members], pa.string()),
        }
    )


def read_source(source: SyncSource, lake_dir: Path, profiles: SQLProfileStore | None) -> pa.Table:
    if source.sql is not None:
        return query_lake(lake_dir, source.sql)
    if profiles is None:
        raise ConfigError("`source.audience` needs the profile store")
    return audience_members(profiles, source.audience or "")
