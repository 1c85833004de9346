"""Console session cookies: they round-trip, and no change to one is accepted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.console import sessions

SECRET = b"k" * 32
NOW = 1_800_000_000.0
ids = st.text(min_size=1, max_size=40)


@given(token_id=ids, age=st.floats(0, sessions.MAX_AGE_SECONDS))
def test_a_session_round_trips_while_young(token_id: str, age: float) -> None:
    session = sessions.new_session(token_id, NOW - age)
    assert sessions.decode(sessions.encode(session, SECRET), SECRET, NOW) == session


@settings(max_examples=300)
@given(
    token_id=ids,
    position=st.integers(min_value=0),
    replacement=st.characters(codec="ascii"),
)
def test_any_changed_character_is_refused(token_id: str, position: int, replacement: str) -> None:
    value = sessions.encode(sessions.new_session(token_id, NOW), SECRET)
    i = position % len(value)
    changed = value[:i] + replacement + value[i + 1 :]
    if changed != value:
        assert sessions.decode(changed, SECRET, NOW) is None


@given(token_id=ids, other=st.binary(min_size=1, max_size=64))
def test_another_secret_or_an_expired_session_is_refused(token_id: str, other: bytes) -> None:
    session = sessions.new_session(token_id, NOW)
    if other != SECRET:
        assert sessions.decode(sessions.encode(session, other), SECRET, NOW) is None
    late = NOW + sessions.MAX_AGE_SECONDS + 1
    assert sessions.decode(sessions.encode(session, SECRET), SECRET, late) is None
    early = NOW - 60  # issued in the future: a clock moved or a forgery
    assert sessions.decode(sessions.encode(session, SECRET), SECRET, early) is None


@given(garbage=st.text(max_size=200))
def test_garbage_is_no_session(garbage: str) -> None:
    assert sessions.decode(garbage, SECRET, NOW) is None


@given(given_token=st.one_of(st.none(), st.text(max_size=64)))
def test_only_the_sessions_own_csrf_token_matches(given_token: str | None) -> None:
    session = sessions.new_session("tok_1", NOW)
    assert sessions.csrf_matches(session, given_token) is (given_token == session.csrf)
    assert sessions.csrf_matches(session, session.csrf)


def test_the_secret_is_made_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    first = sessions.load_secret(tmp_path)
    assert len(first) == 32
    assert sessions.load_secret(tmp_path) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "console-secret").st_mode)
    assert mode == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["console-secret"]
