"""Contract tests of the operational store's access management: write keys (hashed,
rotated with an overlap, refused once expired), sources disabled, enabled and deleted,
tokens revoked, and the audit log. Run against every backend in ``stores``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.store.protocol import AlreadyExists, NotFound, OperationalStore
from kirana.store.sqlite import SQLiteStore
from kirana.store.sqlite_schema import hash_secret


class Clock:
    """A clock the test moves by hand (expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[OperationalStore]:
    made = SQLiteStore(tmp_path / "store.sqlite", clock=clock)
    yield made
    made.close()


def test_a_write_key_is_shown_once_and_stored_only_as_a_hash(store, tmp_path) -> None:
    source, key = store.create_source("web")
    assert store.source_by_write_key(key).id == source.id
    assert [k.prefix for k in store.source_by_name("web").keys] == [key[:7]]
    raw = (tmp_path / "store.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("store.sqlite-wal")
    )
    assert key.encode() not in raw
    assert hash_secret(key).encode() in raw


def test_names_are_unique_and_not_blank(store) -> None:
    store.create_source("web")
    with pytest.raises(AlreadyExists):
        store.create_source("web")
    with pytest.raises(ValueError, match="empty"):
        store.create_source("  ")


def test_rotation_keeps_the_old_key_for_the_overlap_then_refuses_it(store, clock) -> None:
    _, old = store.create_source("web")
    source, new = store.rotate_write_key("web", timedelta(hours=1))
    assert new != old
    assert [k.expires_at for k in source.keys] == [clock.now + timedelta(hours=1), None]
    clock.advance(minutes=59)
    assert store.source_by_write_key(old).name == "web"
    assert store.source_by_write_key(new).name == "web"
    clock.advance(minutes=1)
    assert store.source_by_write_key(old) is None
    assert store.source_by_write_key(new).name == "web"
    assert [k.prefix for k in store.source_by_name("web").keys] == [new[:7]]


def test_a_second_rotation_never_extends_an_older_keys_window(store, clock) -> None:
    _, first = store.create_source("web")
    store.rotate_write_key("web", timedelta(hours=1))
    _, third = store.rotate_write_key("web", timedelta(days=2))
    clock.advance(hours=1)
    assert store.source_by_write_key(first) is None
    assert store.source_by_write_key(third) is not None


def test_rotation_with_no_overlap_ends_the_old_key_at_once(store) -> None:
    _, old = store.create_source("web")
    store.rotate_write_key("web", timedelta(0))
    assert store.source_by_write_key(old) is None


@pytest.mark.parametrize("overlap", [timedelta(seconds=-1), timedelta(days=31)])
def test_rotation_refuses_an_overlap_out_of_range(store, overlap) -> None:
    _, key = store.create_source("web")
    with pytest.raises(ValueError, match="overlap_seconds"):
        store.rotate_write_key("web", overlap)
    assert store.source_by_write_key(key) is not None


def test_changes_to_a_missing_source_say_not_found(store) -> None:
    for change in (
        lambda: store.rotate_write_key("nope", timedelta(0)),
        lambda: store.set_source_enabled("nope", False),
        lambda: store.delete_source("nope"),
    ):
        with pytest.raises(NotFound, match="nope"):
            change()


def test_a_disabled_source_is_found_by_its_key_but_marked_until_enabled(store, clock) -> None:
    _, key = store.create_source("web")
    disabled = store.set_source_enabled("web", False)
    assert disabled.disabled_at == clock.now and not disabled.enabled
    clock.advance(hours=1)
    store.set_source_enabled("web", False)  # again: keeps the first time
    assert store.source_by_write_key(key).disabled_at == disabled.disabled_at
    assert store.set_source_enabled("web", True).enabled
    assert store.source_by_write_key(key).enabled


def test_deleting_a_source_ends_its_keys_and_frees_its_name(store) -> None:
    source, key = store.create_source("web")
    _, rotated = store.rotate_write_key("web", timedelta(hours=1))
    assert store.delete_source("web").id == source.id
    assert store.source_by_write_key(key) is None
    assert store.source_by_write_key(rotated) is None
    assert store.list_sources() == []
    again, _ = store.create_source("web")
    assert again.id != source.id


def test_a_revoked_token_authenticates_nothing_but_stays_listed(store, clock) -> None:
    token, secret = store.create_token("ci", "admin")
    other, other_secret = store.create_token("me", "viewer")
    assert store.token_by_secret(secret) == token
    revoked = store.revoke_token(token.id)
    assert revoked.revoked_at == clock.now
    assert store.token_by_secret(secret) is None
    assert store.token_by_secret(other_secret) == other
    assert store.revoke_token(token.id).revoked_at == clock.now  # idempotent
    assert {t.id: t.revoked_at for t in store.list_tokens()} == {
        token.id: clock.now,
        other.id: None,
    }
    assert store.token_by_id(token.id) == revoked
    assert store.token_by_id(other.id) == other
    assert store.token_by_id("tok_missing") is None
    with pytest.raises(NotFound):
        store.revoke_token("tok_missing")


def _record(store, n: int, actor: str = "tok_a", action: str = "POST /v1/sources") -> None:
    store.record_audit(
        actor_id=actor,
        actor_name=f"name-{actor}",
        action=action,
        target=f"t{n}",
        summary={"body": {"name": f"t{n}"}},
        status=201,
    )


def test_the_audit_log_pages_newest_first_without_gaps(store, clock) -> None:
    for n in range(7):
        _record(store, n)
        clock.advance(seconds=1)
    seen, before = [], None
    while page := store.list_audit(before=before, limit=3):
        seen += [e.target for e in page]
        before = page[-1].seq
        _record(store, 100)  # arriving while paging: neither repeated nor hiding older ones
    assert seen == [f"t{n}" for n in range(6, -1, -1)]


def test_the_audit_log_filters_by_actor_action_target_and_time(store, clock) -> None:
    _record(store, 1, actor="tok_a")
    clock.advance(minutes=1)
    start = clock.now
    _record(store, 2, actor="tok_b", action="DELETE /v1/sources/{name}")
    _record(store, 3, actor="tok_b", action="POST /v1/sources/{name}/rotate-key")
    entry = store.list_audit(target="t2")[0]
    assert (entry.actor_id, entry.actor_name, entry.at, entry.status) == (
        "tok_b",
        "name-tok_b",
        start,
        201,
    )
    assert entry.summary == {"body": {"name": "t2"}}
    assert [e.target for e in store.list_audit(actor="name-tok_a")] == ["t1"]
    assert [e.target for e in store.list_audit(action="POST /v1/sources")] == ["t3", "t1"]
    assert [e.target for e in store.list_audit(since=start)] == ["t3", "t2"]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(["rotate", "disable", "enable", "advance"]), max_size=12))
def test_the_newest_key_works_exactly_while_its_source_exists(store, clock, steps) -> None:
    """Whatever sequence of changes: the key from the last create/rotate always finds the
    source (disabled or not), every key whose window has passed never does."""
    name = f"s{len(store.list_sources())}"
    _, newest = store.create_source(name)
    dead: list[str] = []
    windows: dict[str, datetime] = {}
    for step in steps:
        if step == "rotate":
            overlap = timedelta(minutes=30)
            windows[newest] = clock.now + overlap
            windows = {k: min(v, clock.now + overlap) for k, v in windows.items()}
            _, newest = store.rotate_write_key(name, overlap)
        elif step == "advance":
            clock.advance(minutes=20)
        else:
            store.set_source_enabled(name, step == "enable")
        for key, until in list(windows.items()):
            if until <= clock.now:
                dead.append(key)
                del windows[key]
        assert store.source_by_write_key(newest).name == name
        assert all(store.source_by_write_key(k) is None for k in dead)
        assert all(store.source_by_write_key(k).name == name for k in windows)
    store.delete_source(name)
    assert store.source_by_write_key(newest) is None


def test_an_old_store_file_is_migrated_with_its_keys_hashed(tmp_path, clock) -> None:
    """A data dir from before versioning (write keys in plain text) upgrades in place:
    the same keys still work, and the plain text is gone from the file."""
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE sources (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            write_key TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
        CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
        """
    )
    old_key = "wk_legacyLegacyLegacyLegacy0123"
    conn.execute(
        "INSERT INTO sources VALUES ('src_1', 'web', ?, '2026-01-01T00:00:00+00:00')", (old_key,)
    )
    conn.execute(
        "INSERT INTO tokens VALUES ('tok_1', 'me', 'admin', ?, '2026-01-01T00:00:00+00:00')",
        (hash_secret("kt_old"),),
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path, clock=clock)
    try:
        assert store.source_by_write_key(old_key).id == "src_1"
        assert store.token_by_secret("kt_old").name == "me"
        assert store.source_by_name("web").keys[0].prefix == old_key[:7]
        store.close()
        SQLiteStore(path, clock=clock).close()  # opening again changes nothing
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.close()
        assert old_key.encode() not in path.read_bytes()
    finally:
        store.close()
