"""Tracking tokens round-trip, and anything else is refused with TokenError (never a crash)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kirana.automation.tracking import (
    PREFIX,
    TokenError,
    TrackingToken,
    decode_token,
    encode_token,
    feedback_targets,
)

keys = st.text(min_size=1, max_size=40)
epochs = st.tuples(st.integers(1, 10**6), st.floats(0, 4e9, allow_nan=False))
tokens = st.builds(
    TrackingToken,
    decision_id=st.text(max_size=20),
    widget_position=st.integers(0, 50),
    item_position=st.integers(0, 50),
    placement=keys,
    segment=keys,
    widget=keys,
    widget_epoch=epochs,
    item_arm=st.none() | keys,
    item_epoch=epochs,
)


@given(tokens)
def test_round_trip(token: TrackingToken) -> None:
    text = encode_token(token)
    assert text.startswith(PREFIX) and text.isascii() and " " not in text
    assert decode_token(text) == token
    assert token.slot_id == f"{token.decision_id}.{token.widget_position}.{token.item_position}"


@given(st.text(max_size=200) | st.builds(lambda s: PREFIX + s, st.text(max_size=200)))
def test_anything_else_is_a_token_error(value: str) -> None:
    try:
        decoded = decode_token(value)
    except TokenError:
        return
    assert encode_token(decoded).startswith(PREFIX)  # the rare string that is a valid token


@given(tokens, st.binary(min_size=1, max_size=8))
def test_damaged_tokens_are_refused_or_decode_to_a_token(token: TrackingToken, junk: bytes) -> None:
    text = encode_token(token)[:-3] + junk.hex()
    with contextlib.suppress(TokenError):  # refused, or by chance still a token
        assert isinstance(decode_token(text), TrackingToken)


@pytest.mark.parametrize(
    ("kind", "arm", "position", "expected"),
    [
        ("impression", "w/i", 0, [("w/i", (2, 0.0)), ("w", (1, 0.0))]),
        ("impression", "w/i", 1, [("w/i", (2, 0.0))]),
        ("click", "w/i", 3, [("w/i", (2, 0.0)), ("w", (1, 0.0))]),
        ("impression", None, 2, []),
        ("click", None, 2, [("w", (1, 0.0))]),
    ],
)
def test_feedback_targets(kind, arm, position, expected) -> None:
    assert feedback_targets(kind, "w", (1, 0.0), arm, (2, 0.0), position) == expected
