"""The profile store: identities, links, trait observations, merge history.

One interface (:class:`ProfileStore`), one SQL implementation shared by the
backends (:class:`SQLProfileStore`), and one small module per backend that
only knows how to connect: ``sqlite_store`` (embedded default) and
``postgres_store`` (scale). Times are stored as ISO-8601 UTC text so that the
same SQL, and the same ordering, works on both.

Traits are kept per identifier (last write wins per trait, by event time then
messageId) and combined per profile when read. A merge or a re-split of
profiles therefore never has to move trait rows: the profile's traits are by
definition those of its identifiers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kirana.identity.graph import Link
from kirana.identity.rules import Identifier
from kirana.identity.store_segments import ProfileSummary, SegmentTablesMixin

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS identities (
        id_type TEXT NOT NULL, id_value TEXT NOT NULL, profile_id TEXT NOT NULL,
        PRIMARY KEY (id_type, id_value))""",
    "CREATE INDEX IF NOT EXISTS identities_profile ON identities (profile_id)",
    """CREATE TABLE IF NOT EXISTS identity_links (
        a_type TEXT NOT NULL, a_value TEXT NOT NULL, b_type TEXT NOT NULL, b_value TEXT NOT NULL,
        ts TEXT NOT NULL, message_id TEXT NOT NULL,
        PRIMARY KEY (a_type, a_value, b_type, b_value))""",
    "CREATE INDEX IF NOT EXISTS identity_links_b ON identity_links (b_type, b_value)",
    """CREATE TABLE IF NOT EXISTS identity_traits (
        id_type TEXT NOT NULL, id_value TEXT NOT NULL, trait TEXT NOT NULL,
        value TEXT NOT NULL, ts TEXT NOT NULL, message_id TEXT NOT NULL,
        PRIMARY KEY (id_type, id_value, trait))""",
    """CREATE TABLE IF NOT EXISTS profile_merges (
        from_profile TEXT NOT NULL, into_profile TEXT NOT NULL, ts TEXT NOT NULL,
        message_id TEXT NOT NULL, PRIMARY KEY (from_profile, into_profile, message_id))""",
    # the UTC days on which an identifier had events in the lake: profile timelines read
    # only those partitions of the events table (kirana.profiles.timeline)
    """CREATE TABLE IF NOT EXISTS identity_event_days (
        id_type TEXT NOT NULL, id_value TEXT NOT NULL, day TEXT NOT NULL,
        PRIMARY KEY (id_type, id_value, day))""",
    """CREATE TABLE IF NOT EXISTS profile_positions (
        consumer TEXT PRIMARY KEY, position BIGINT NOT NULL)""",
]


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class MergeRecord:
    from_profile: str
    into_profile: str
    timestamp: datetime
    message_id: str


@dataclass(frozen=True)
class TraitValue:
    value: Any
    timestamp: datetime
    message_id: str


@dataclass(frozen=True)
class Profile:
    """The single view of one customer."""

    profile_id: str
    identities: list[Identifier]
    traits: dict[str, Any]
    merged_from: list[MergeRecord]


class ProfileStore(Protocol):
    """What identity resolution and the profile API need from storage."""

    def transaction(self) -> Any: ...
    def links_touching(self, identifiers: Iterable[Identifier]) -> list[Link]: ...
    def add_links(self, links: Sequence[Link]) -> list[Link]: ...
    def profile_ids(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]: ...
    def assign(self, assignments: dict[Identifier, str]) -> None: ...
    def record_merges(self, merges: Sequence[MergeRecord]) -> None: ...
    def observe_traits(
        self, identifier: Identifier, traits: dict[str, Any], ts: datetime, message_id: str
    ) -> None: ...
    def profile(self, identifier: Identifier) -> Profile | None: ...
    def profile_by_id(self, profile_id: str) -> Profile | None: ...
    def profile_summary(self, identifier: Identifier) -> ProfileSummary | None: ...
    def record_event_days(self, rows: Sequence[tuple[str, str, str]]) -> None: ...
    def event_days(self, identifiers: Iterable[Identifier]) -> list[str]: ...
    def get_position(self, consumer: str) -> int | None: ...
    def set_position(self, consumer: str, position: int) -> None: ...
    def close(self) -> None: ...


class SQLProfileStore(SegmentTablesMixin):
    """The ProfileStore in portable SQL over a DB-API connection.

    Subclasses open the connection and say which parameter marker it uses.
    """

    marker = "?"

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._in_tx = False
        with self.transaction():
            for statement in SCHEMA:
                self._exec(statement)
            self._segment_schema()

    # -- plumbing ---------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.marker == "?" else sql.replace("?", self.marker)

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), args)
        return cur

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.cursor().executemany(self._sql(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        self._begin()
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._conn.rollback()
            raise
        finally:
            self._in_tx = False
        self._conn.commit()

    def _begin(self) -> None:
        """Backends that need an explicit BEGIN override this."""

    def _select_in(self, sql_head: str, identifiers: list[Identifier], tail: str = "") -> list:
        rows: list = []
        for start in range(0, len(identifiers), 200):
            chunk = identifiers[start : start + 200]
            cond = " OR ".join(["(id_type = ? AND id_value = ?)"] * len(chunk))
            args = [x for ident in chunk for x in ident]
            rows.extend(self._exec(f"{sql_head} WHERE ({cond}) {tail}", args).fetchall())
        return rows

    # -- links ----------------------------------------------------------------

    def links_touching(self, identifiers: Iterable[Identifier]) -> list[Link]:
        idents = list(dict.fromkeys(identifiers))
        found: dict[tuple, Link] = {}
        for side in ("a", "b"):
            for start in range(0, len(idents), 200):
                chunk = idents[start : start + 200]
                cond = " OR ".join([f"({side}_type = ? AND {side}_value = ?)"] * len(chunk))
                args = [x for ident in chunk for x in ident]
                for row in self._exec(
                    f"SELECT a_type, a_value, b_type, b_value, ts, message_id "
                    f"FROM identity_links WHERE {cond}",
                    args,
                ):
                    link = Link(
                        datetime.fromisoformat(row[4]), row[5], (row[0], row[1]), (row[2], row[3])
                    )
                    found[(link.a, link.b)] = link
        return list(found.values())

    def add_links(self, links: Sequence[Link]) -> list[Link]:
        """Store links; return those that are new or earlier than the stored copy."""
        changed: list[Link] = []
        for link in links:
            row = self._exec(
                "SELECT ts, message_id FROM identity_links "
                "WHERE a_type = ? AND a_value = ? AND b_type = ? AND b_value = ?",
                (*link.a, *link.b),
            ).fetchone()
            key = (_ts(link.timestamp), link.message_id)
            if row is not None and (row[0], row[1]) <= key:
                continue
            self._exec(
                "INSERT INTO identity_links VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (a_type, a_value, b_type, b_value) DO UPDATE "
                "SET ts = excluded.ts, message_id = excluded.message_id",
                (*link.a, *link.b, *key),
            )
            changed.append(link)
        return changed

    # -- assignments ------------------------------------------------------------

    def profile_ids(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        rows = self._select_in(
            "SELECT id_type, id_value, profile_id FROM identities", list(dict.fromkeys(identifiers))
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def assign(self, assignments: dict[Identifier, str]) -> None:
        self._many(
            "INSERT INTO identities VALUES (?, ?, ?) ON CONFLICT (id_type, id_value) "
            "DO UPDATE SET profile_id = excluded.profile_id",
            [(t, v, p) for (t, v), p in assignments.items()],
        )

    def record_merges(self, merges: Sequence[MergeRecord]) -> None:
        self._many(
            "INSERT INTO profile_merges VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(m.from_profile, m.into_profile, _ts(m.timestamp), m.message_id) for m in merges],
        )

    # -- traits -----------------------------------------------------------------

    def observe_traits(
        self, identifier: Identifier, traits: dict[str, Any], ts: datetime, message_id: str
    ) -> None:
        """Last write wins per trait, by event time then messageId (order independent)."""
        self._many(
            "INSERT INTO identity_traits VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id_type, id_value, trait) DO UPDATE SET "
            "value = excluded.value, ts = excluded.ts, message_id = excluded.message_id "
            "WHERE excluded.ts > identity_traits.ts OR (excluded.ts = identity_traits.ts "
            "AND excluded.message_id > identity_traits.message_id)",
            [
                (*identifier, key, json.dumps(value, sort_keys=True), _ts(ts), message_id)
                for key, value in traits.items()
            ],
        )

    # -- reading profiles ---------------------------------------------------------

    def profile(self, identifier: Identifier) -> Profile | None:
        pid = self.profile_ids([identifier]).get(identifier)
        return self.profile_by_id(pid) if pid else None

    def profile_by_id(self, profile_id: str) -> Profile | None:
        members = [
            (r[0], r[1])
            for r in self._exec(
                "SELECT id_type, id_value FROM identities WHERE profile_id = ? "
                "ORDER BY id_type, id_value",
                (profile_id,),
            )
        ]
        if not members:
            return None
        latest: dict[str, tuple[str, str, str]] = {}
        for trait, value, ts, mid in self._select_in(
            "SELECT trait, value, ts, message_id FROM identity_traits", members
        ):
            if trait not in latest or (ts, mid) > latest[trait][1:]:
                latest[trait] = (value, ts, mid)
        merges = [
            MergeRecord(r[0], r[1], datetime.fromisoformat(r[2]), r[3])
            for r in self._exec(
                "SELECT from_profile, into_profile, ts, message_id FROM profile_merges "
                "WHERE into_profile = ? ORDER BY ts",
                (profile_id,),
            )
        ]
        traits = {k: json.loads(v[0]) for k, v in sorted(latest.items())}
        return Profile(profile_id, members, traits, merges)

    # -- consumer position ----------------------------------------------------------

    # -- active days (profile timelines) -------------------------------------------

    def record_event_days(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Remember that identifiers had events on days (``YYYY-MM-DD``, UTC); idempotent."""
        self._many("INSERT INTO identity_event_days VALUES (?, ?, ?) ON CONFLICT DO NOTHING", rows)

    def event_days(self, identifiers: Iterable[Identifier]) -> list[str]:
        """The distinct days on which any of these identifiers had events, newest first."""
        rows = self._select_in("SELECT DISTINCT day FROM identity_event_days", list(identifiers))
        return sorted({r[0] for r in rows}, reverse=True)

    def get_position(self, consumer: str) -> int | None:
        row = self._exec(
            "SELECT position FROM profile_positions WHERE consumer = ?", (consumer,)
        ).fetchone()
        return int(row[0]) if row else None

    def set_position(self, consumer: str, position: int) -> None:
        self._exec(
            "INSERT INTO profile_positions VALUES (?, ?) ON CONFLICT (consumer) "
            "DO UPDATE SET position = excluded.position",
            (consumer, position),
        )

    def close(self) -> None:
        self._conn.close()
