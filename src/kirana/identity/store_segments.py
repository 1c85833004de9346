"""Profile-store tables for computed traits, audiences and their history.

Mixed into :class:`kirana.identity.store.SQLProfileStore` so both backends get
them from the same portable SQL. Definitions are stored as JSON text and
parsed by :mod:`kirana.segments`; this module only persists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

SEGMENT_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS segment_definitions (
        kind TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (kind, name))""",
    """CREATE TABLE IF NOT EXISTS computed_trait_values (
        profile_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        computed_at TEXT NOT NULL, PRIMARY KEY (profile_id, name))""",
    "CREATE INDEX IF NOT EXISTS computed_trait_values_name ON computed_trait_values (name)",
    """CREATE TABLE IF NOT EXISTS audience_memberships (
        audience TEXT NOT NULL, profile_id TEXT NOT NULL, since TEXT NOT NULL,
        PRIMARY KEY (audience, profile_id))""",
    "CREATE INDEX IF NOT EXISTS audience_memberships_profile ON audience_memberships (profile_id)",
    """CREATE TABLE IF NOT EXISTS audience_history (
        audience TEXT NOT NULL, profile_id TEXT NOT NULL, change TEXT NOT NULL,
        at TEXT NOT NULL, run_id TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audience_history_profile ON audience_history (profile_id)",
    """CREATE TABLE IF NOT EXISTS recent_events (
        id_type TEXT NOT NULL, id_value TEXT NOT NULL, event TEXT NOT NULL, ts TEXT NOT NULL,
        message_id TEXT NOT NULL, properties TEXT NOT NULL, PRIMARY KEY (message_id))""",
    "CREATE INDEX IF NOT EXISTS recent_events_identity ON recent_events (id_type, id_value)",
    """CREATE TABLE IF NOT EXISTS profile_settings (
        key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS suppressed_identities (
        id_type TEXT NOT NULL, id_value TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (id_type, id_value))""",
]


@dataclass(frozen=True)
class ProfileSummary:
    """What serving reads about one identifier's profile: its id, computed traits and
    audience memberships (both sorted by name, in code-point order on every backend)."""

    profile_id: str
    computed: dict[str, Any]
    audiences: list[str]


# One statement instead of three point reads (profile id, computed values, audiences): one
# snapshot, and one round trip (a third of the personalise API's profile-read CPU on SQLite).
_SUMMARY_SQL = (
    "WITH p AS (SELECT profile_id FROM identities WHERE id_type = ? AND id_value = ?) "
    "SELECT 0, p.profile_id, NULL FROM p "
    "UNION ALL SELECT 1, c.name, c.value FROM p "
    "JOIN computed_trait_values c ON c.profile_id = p.profile_id "
    "UNION ALL SELECT 2, m.audience, NULL FROM p "
    "JOIN audience_memberships m ON m.profile_id = p.profile_id"
)  # (no ORDER BY: sorting the few rows in Python is cheaper than SQLite's sorter)


@dataclass(frozen=True)
class Definition:
    kind: str  # "computed_trait" | "audience"
    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


#: profile_settings key of the counter ``suppress`` bumps (read by every process's list)
SUPPRESSION_VERSION = "suppression_version"


def identifier_digest(value: str) -> str:
    """How suppressed identifiers are stored and compared."""
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SegmentTablesMixin:
    """Persistence for segmentation, on the SQL plumbing of SQLProfileStore."""

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _segment_schema(self) -> None:
        for statement in SEGMENT_SCHEMA:
            self._exec(statement)

    # -- definitions --------------------------------------------------------------

    def save_definition(self, kind: str, name: str, definition: dict[str, Any]) -> None:
        now = _now()
        self._exec(
            "INSERT INTO segment_definitions VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, name) "
            "DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            (kind, name, json.dumps(definition, sort_keys=True), now, now),
        )

    def delete_definition(self, kind: str, name: str) -> bool:
        cur = self._exec(
            "DELETE FROM segment_definitions WHERE kind = ? AND name = ?", (kind, name)
        )
        return cur.rowcount > 0

    def definitions(self, kind: str) -> list[Definition]:
        rows = self._exec(
            "SELECT kind, name, definition, created_at, updated_at FROM segment_definitions "
            "WHERE kind = ? ORDER BY name",
            (kind,),
        ).fetchall()
        return [
            Definition(
                r[0],
                r[1],
                json.loads(r[2]),
                datetime.fromisoformat(r[3]),
                datetime.fromisoformat(r[4]),
            )
            for r in rows
        ]

    # -- computed traits -------------------------------------------------------------

    def replace_computed_values(
        self, name: str, values: Iterable[tuple[str, str]], profiles: Sequence[str] | None
    ) -> None:
        """Set trait ``name`` to ``values`` (profile_id, JSON text) for ``profiles`` (None: all)."""
        if profiles is None:
            self._exec("DELETE FROM computed_trait_values WHERE name = ?", (name,))
        else:
            self._many(
                "DELETE FROM computed_trait_values WHERE name = ? AND profile_id = ?",
                [(name, p) for p in profiles],
            )
        now = _now()
        self._many(
            "INSERT INTO computed_trait_values VALUES (?, ?, ?, ?) ON CONFLICT (profile_id, name) "
            "DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at",
            [(p, name, v, now) for p, v in values],
        )

    def computed_values(self, profile_id: str) -> dict[str, Any]:
        rows = self._exec(
            "SELECT name, value FROM computed_trait_values WHERE profile_id = ? ORDER BY name",
            (profile_id,),
        ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    # -- audiences -------------------------------------------------------------------

    def members(self, audience: str) -> set[str]:
        rows = self._exec(
            "SELECT profile_id FROM audience_memberships WHERE audience = ?", (audience,)
        ).fetchall()
        return {r[0] for r in rows}

    def apply_membership(
        self, audience: str, entered: Iterable[str], exited: Iterable[str], run_id: str
    ) -> None:
        now = _now()
        entered, exited = list(entered), list(exited)
        self._many(
            "INSERT INTO audience_memberships VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(audience, p, now) for p in entered],
        )
        self._many(
            "DELETE FROM audience_memberships WHERE audience = ? AND profile_id = ?",
            [(audience, p) for p in exited],
        )
        self._many(
            "INSERT INTO audience_history VALUES (?, ?, ?, ?, ?)",
            [(audience, p, "entered", now, run_id) for p in entered]
            + [(audience, p, "exited", now, run_id) for p in exited],
        )

    def audiences_of(self, profile_id: str) -> list[str]:
        rows = self._exec(
            "SELECT audience FROM audience_memberships WHERE profile_id = ? ORDER BY audience",
            (profile_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def profile_summary(self, identifier: tuple[str, str]) -> ProfileSummary | None:
        """The profile ``identifier`` belongs to, with its computed values and audiences, in
        one query: the same as ``profile_ids`` then ``computed_values`` and ``audiences_of``
        (``None``: no profile has the identifier)."""
        profile_id = None
        computed: list[tuple[str, str]] = []
        audiences: list[str] = []
        for kind, name, value in self._exec(_SUMMARY_SQL, identifier).fetchall():
            if kind == 0:
                profile_id = name
            elif kind == 1:
                computed.append((name, value))
            else:
                audiences.append(name)
        if profile_id is None:
            return None
        computed.sort()
        audiences.sort()
        return ProfileSummary(profile_id, {k: json.loads(v) for k, v in computed}, audiences)

    def audience_history(self, audience: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._exec(
            "SELECT profile_id, change, at, run_id FROM audience_history WHERE audience = ? "
            "ORDER BY at DESC LIMIT ?",
            (audience, limit),
        ).fetchall()
        return [{"profile_id": r[0], "change": r[1], "at": r[2], "run_id": r[3]} for r in rows]

    def transition_counts(self, audience: str, profiles: Sequence[str]) -> dict[str, int]:
        """How many membership changes each profile has had in ``audience``."""
        if not profiles:
            return {}
        rows = self._exec(
            "SELECT profile_id, count(*) FROM audience_history WHERE audience = ? "
            "GROUP BY profile_id",
            (audience,),
        ).fetchall()
        wanted = set(profiles)
        return {r[0]: int(r[1]) for r in rows if r[0] in wanted}

    def forget_vanished_profiles(self) -> None:
        """Drop values and memberships of profiles merged away (no identifier left)."""
        for table in ("computed_trait_values", "audience_memberships"):
            self._exec(
                f"DELETE FROM {table} WHERE profile_id NOT IN (SELECT profile_id FROM identities)"
            )

    # -- recent events for real-time audiences ---------------------------------------

    def add_recent_event(
        self,
        identifier: tuple[str, str],
        event: str,
        ts: datetime,
        message_id: str,
        properties: dict[str, Any],
    ) -> None:
        self._exec(
            "INSERT INTO recent_events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                *identifier,
                event,
                ts.isoformat(timespec="microseconds"),
                message_id,
                json.dumps(properties),
            ),
        )

    def recent_events(self, profile_id: str) -> list[tuple[str, datetime, str, dict[str, Any]]]:
        rows = self._exec(
            "SELECT r.event, r.ts, r.message_id, r.properties FROM recent_events r "
            "JOIN identities i ON i.id_type = r.id_type AND i.id_value = r.id_value "
            "WHERE i.profile_id = ? ORDER BY r.ts, r.message_id",
            (profile_id,),
        ).fetchall()
        return [(r[0], datetime.fromisoformat(r[1]), r[2], json.loads(r[3])) for r in rows]

    def prune_recent_events(self, before: datetime) -> int:
        cur = self._exec(
            "DELETE FROM recent_events WHERE ts < ?", (before.isoformat(timespec="microseconds"),)
        )
        return cur.rowcount

    # -- privacy -------------------------------------------------------------------

    def suppress(self, identities: Sequence[tuple[str, str]]) -> None:
        """Remember erased identifiers by digest only: suppression must not keep the person.

        Bumps the suppression version in the same transaction, so every process's list
        (``privacy.suppression``) sees a change with one point read instead of the list."""
        with self.transaction():
            self._many(
                "INSERT INTO suppressed_identities VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(t, identifier_digest(v), _now()) for t, v in identities],
            )
            self._exec(
                "INSERT INTO profile_settings VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(CAST(profile_settings.value AS INTEGER) + 1 AS TEXT)",
                (SUPPRESSION_VERSION,),
            )

    def suppression_version(self) -> str | None:
        """A token that changes whenever the suppressed identifiers do (None: none yet)."""
        return self.get_setting(SUPPRESSION_VERSION)

    def suppressed(self) -> set[tuple[str, str]]:
        """(type, digest) pairs of suppressed identifiers."""
        rows = self._exec("SELECT id_type, id_value FROM suppressed_identities").fetchall()
        return {(r[0], r[1]) for r in rows}

    def erase_profile(self, profile_id: str, identities: Sequence[tuple[str, str]]) -> None:
        """Remove every row about the profile and its identifiers."""
        pairs = [tuple(i) for i in identities]
        self._many("DELETE FROM identities WHERE id_type = ? AND id_value = ?", pairs)
        self._many("DELETE FROM identity_traits WHERE id_type = ? AND id_value = ?", pairs)
        self._many("DELETE FROM identity_links WHERE a_type = ? AND a_value = ?", pairs)
        self._many("DELETE FROM identity_links WHERE b_type = ? AND b_value = ?", pairs)
        self._many("DELETE FROM recent_events WHERE id_type = ? AND id_value = ?", pairs)
        self._many("DELETE FROM identity_event_days WHERE id_type = ? AND id_value = ?", pairs)
        for table in ("computed_trait_values", "audience_memberships", "audience_history"):
            self._exec(f"DELETE FROM {table} WHERE profile_id = ?", (profile_id,))
        self._exec(
            "DELETE FROM profile_merges WHERE from_profile = ? OR into_profile = ?",
            (profile_id, profile_id),
        )

    def compact_storage(self) -> None:
        """Make deleted rows unrecoverable from the database files (backend specific)."""

    # -- settings ------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        row = self._exec("SELECT value FROM profile_settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO profile_settings VALUES (?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- bulk exports for DuckDB ------------------------------------------------------

    def _arrow(self, sql: str, names: list[str]) -> pa.Table:
        rows = self._exec(sql).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table(
            {n: pa.array(list(c), pa.string()) for n, c in zip(names, columns, strict=True)}
        )

    def export_identities(self) -> pa.Table:
        return self._arrow(
            "SELECT id_type, id_value, profile_id FROM identities",
            ["id_type", "id_value", "profile_id"],
        )

    def _scope(self, profiles: Sequence[str] | None) -> str:
        """A SQL filter on ``profile_id`` for ``profiles`` (None: no filter)."""
        if profiles is None:
            return ""
        self._exec("CREATE TEMP TABLE IF NOT EXISTS export_scope (profile_id TEXT PRIMARY KEY)")
        self._exec("DELETE FROM export_scope")
        self._many(
            "INSERT INTO export_scope VALUES (?) ON CONFLICT DO NOTHING", [(p,) for p in profiles]
        )
        return " WHERE profile_id IN (SELECT profile_id FROM export_scope)"

    def export_identity_traits(self, profiles: Sequence[str] | None = None) -> pa.Table:
        scope = self._scope(profiles).replace("profile_id", "i.profile_id", 1)
        return self._arrow(
            "SELECT i.profile_id, t.trait, t.value, t.ts, t.message_id FROM identity_traits t "
            "JOIN identities i ON i.id_type = t.id_type AND i.id_value = t.id_value" + scope,
            ["profile_id", "trait", "value", "ts", "message_id"],
        )

    def export_computed_values(self, profiles: Sequence[str] | None = None) -> pa.Table:
        return self._arrow(
            "SELECT profile_id, name, value FROM computed_trait_values" + self._scope(profiles),
            ["profile_id", "name", "value"],
        )

    def export_memberships(self, profiles: Sequence[str] | None = None) -> pa.Table:
        return self._arrow(
            "SELECT audience, profile_id FROM audience_memberships" + self._scope(profiles),
            ["audience", "profile_id"],
        )

    def export_identities_of(self, profile_id: str) -> pa.Table:
        rows = self._exec(
            "SELECT id_type, id_value, profile_id FROM identities WHERE profile_id = ?",
            (profile_id,),
        ).fetchall()
        names = ["id_type", "id_value", "profile_id"]
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table(
            {n: pa.array(list(c), pa.string()) for n, c in zip(names, columns, strict=True)}
        )
