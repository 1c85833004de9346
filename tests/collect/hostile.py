"""Hypothesis strategies: valid events with arbitrary JSON values, and hostile events of
every class the collector must reject on their own (issue 15).

A hostile event is raw bytes (some classes cannot be written as a Python value) with the
code it must be rejected with and a fragment its message must contain (the field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from hypothesis import strategies as st

from kirana.collect.values import INT64_MAX, INT64_MIN, MAX_NESTING_DEPTH

SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
SAFE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT
)
SAFE_VALUES = st.recursive(
    SAFE_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12,
)


@dataclass(frozen=True)
class Hostile:
    kind: str
    raw: bytes
    code: str
    field: str


def event_bytes(message_id: str, extra: bytes = b"", properties: bytes | None = None) -> bytes:
    """A valid track event's bytes, with ``extra`` members and raw ``properties`` spliced in."""
    head = json.dumps({"type": "track", "event": "E", "userId": "u", "messageId": message_id})
    body = head[:-1].encode()
    if properties is not None:
        body += b', "properties": ' + properties
    if extra:
        body += b", " + extra
    return body + b"}"


def valid_event(message_id: str, properties: dict) -> bytes:
    return event_bytes(message_id, properties=json.dumps(properties).encode())


_SURROGATES = st.integers(min_value=0xD800, max_value=0xDFFF).map(lambda c: f"\\u{c:04x}")
_BAD_UTF8 = st.sampled_from(
    [b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80"]
)
_PLAIN = st.text(alphabet="abcxyz ", max_size=4).map(str.encode)
_OUT_OF_INT64 = st.integers(max_value=INT64_MIN - 1) | st.integers(min_value=INT64_MAX + 1)
_EARLY = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(1500, 1, 1),
)
_LATE = st.datetimes(
    min_value=datetime(8000, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
)


def _iso(value) -> bytes:
    return json.dumps(value.isoformat() + "Z").encode()


@st.composite
def hostile_event(draw, message_id: str) -> Hostile:
    kind = draw(
        st.sampled_from(
            [
                "surrogate",
                "surrogate_key",
                "bad_utf8",
                "nul_value",
                "nul_byte",
                "nul_key",
                "nul_user",
                "big_int",
                "deep",
                "timestamps",
                "offset_overflow",
            ]
        )
    )
    key = draw(st.sampled_from([b"a", b"name", b"x_y"]))
    if kind == "surrogate":
        text = draw(_PLAIN) + draw(_SURROGATES).encode() + draw(_PLAIN)
        props = b'{"' + key + b'": "' + text + b'"}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "surrogate_key":
        props = b'{"' + draw(_SURROGATES).encode() + b'": 1}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "bad_utf8":
        text = draw(_PLAIN) + draw(_BAD_UTF8) + draw(_PLAIN)
        props = b'{"' + key + b'": ["ok", "' + text + b'"]}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "nul_value":
        props = b'{"' + key + b'": {"in": "x\\u0000y"}}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "nul_byte":  # a raw NUL inside a string: not even JSON, yet the field is named
        props = b'{"' + key + b'": "x\x00y"}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "nul_key":
        props = b'{"k\\u0000": true}'
        return Hostile(
            kind, event_bytes(message_id, properties=props), "invalid_text", "properties"
        )
    if kind == "nul_user":
        raw = json.dumps(
            {"type": "track", "event": "E", "userId": "u\x00v", "messageId": message_id}
        ).encode()
        return Hostile(kind, raw, "invalid_text", "userId")
    if kind == "big_int":
        huge = draw(st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n))
        number = draw(st.sampled_from([str(draw(_OUT_OF_INT64)), huge.rjust(20, "9")])).encode()
        props = b'{"' + key + b'": [1, ' + number + b"]}"
        return Hostile(
            kind, event_bytes(message_id, properties=props), "number_out_of_range", "properties"
        )
    if kind == "deep":
        # the event and ``properties`` are two levels: 62 more is the limit
        depth = draw(st.integers(min_value=MAX_NESTING_DEPTH - 1, max_value=3000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"k": ', b"}")]))
        inner = opener * depth + b"1" + closer * depth
        props = b'{"' + key + b'": ' + inner + b"}"
        return Hostile(kind, event_bytes(message_id, properties=props), "too_deep", "properties")
    if kind == "timestamps":  # the sentAt correction overflows the calendar either way
        early, late = draw(_EARLY), draw(_LATE)
        stamp, sent = draw(st.sampled_from([(early, late), (late, early)]))
        extra = b'"timestamp": ' + _iso(stamp) + b', "sentAt": ' + _iso(sent)
        return Hostile(kind, event_bytes(message_id, extra), "invalid_timestamp", "timestamp")
    # an offset that moves year 1 before it, or year 9999 past it, in UTC
    hours = draw(st.integers(min_value=1, max_value=23))
    field = draw(st.sampled_from(["timestamp", "sentAt"]))
    value = draw(
        st.sampled_from(
            [f"0001-01-01T00:00:00+{hours:02d}:00", f"9999-12-31T23:59:59-{hours:02d}:00"]
        )
    )
    extra = f'"{field}": "{value}"'.encode()
    return Hostile(kind, event_bytes(message_id, extra), "invalid_timestamp", field)
