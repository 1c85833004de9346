"""Validation and normalisation rules, including property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.collect.normalize import BatchDefaults, InvalidEvent, normalize
from kirana.collect.schema import event_decoder

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def norm(body: dict, **kw) -> dict:
    return normalize(
        event_decoder.decode(msgspec.json.encode(body)), received_at=NOW, source_id="s", **kw
    )


def test_sent_at_corrects_a_skewed_device_clock() -> None:
    # device clock 3 hours fast: event 10 s before sending
    out = norm(
        {
            "type": "track",
            "event": "E",
            "userId": "u",
            "timestamp": "2026-11-27T15:00:00Z",
            "sentAt": "2026-11-27T15:00:10Z",
        }
    )
    assert out["timestamp"] == "2026-11-27T11:59:50.000000Z"
    assert out["originalTimestamp"] == "2026-11-27T15:00:00.000000Z"
    assert out["receivedAt"] == "2026-11-27T12:00:00.000000Z"


@given(
    skew_ms=st.integers(min_value=-(10**9), max_value=10**9),
    delay_ms=st.integers(min_value=0, max_value=10**7),
)
def test_correction_recovers_true_time_whatever_the_device_clock(
    skew_ms: int, delay_ms: int
) -> None:
    """With a device clock off by ``skew``, the corrected timestamp is the true event time."""
    true_time = NOW - timedelta(milliseconds=delay_ms)
    skew = timedelta(milliseconds=skew_ms)
    body = {
        "type": "track",
        "event": "E",
        "anonymousId": "a",
        "timestamp": (true_time + skew).isoformat(),
        "sentAt": (NOW + skew).isoformat(),
    }
    out = norm(body)
    assert datetime.fromisoformat(out["timestamp"]) == true_time


def test_batch_sent_at_applies_when_event_has_none() -> None:
    defaults = BatchDefaults(sent_at=datetime(2026, 11, 27, 12, 0, 10, tzinfo=UTC))
    out = norm(
        {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-11-27T12:00:00Z"},
        defaults=defaults,
    )
    assert out["timestamp"] == "2026-11-27T11:59:50.000000Z"


def test_batch_context_and_integrations_merge_with_event_winning() -> None:
    defaults = BatchDefaults(
        context={"ip": "1.1.1.1", "library": {"name": "b"}}, integrations={"All": False}
    )
    out = norm(
        {
            "type": "identify",
            "userId": "u",
            "traits": {"email": "x@y"},
            "context": {"library": {"name": "e"}},
        },
        defaults=defaults,
    )
    assert out["context"] == {"ip": "1.1.1.1", "library": {"name": "e"}}
    assert out["integrations"] == {"All": False}
    assert out["traits"] == {"email": "x@y"}


def test_missing_timestamp_means_received_now_and_message_id_is_generated() -> None:
    out = norm({"type": "page", "anonymousId": "a", "name": "Home"})
    assert out["timestamp"] == "2026-11-27T12:00:00.000000Z"
    assert len(out["messageId"]) == 36
    assert "originalTimestamp" not in out


def test_free_form_objects_are_kept_whole() -> None:
    props = {
        "products": [{"product_id": "1", "price": 2.5, "nested": {"a": [1, None, True]}}],
        "unicode": "chai ☕",
        "big": 10**15,
    }
    out = norm({"type": "track", "event": "Order Completed", "userId": 7, "properties": props})
    assert out["properties"] == props
    assert out["userId"] == "7"


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"type": "track", "userId": "u"}, "missing_field", "`event`"),
        ({"type": "track", "event": "  ", "userId": "u"}, "missing_field", "`event`"),
        ({"type": "track", "event": "E"}, "missing_field", "`userId` or `anonymousId`"),
        ({"type": "track", "event": "E", "userId": ""}, "invalid_field", "`userId`"),
        ({"type": "alias", "userId": "u"}, "missing_field", "`previousId`"),
        ({"type": "group", "userId": "u"}, "missing_field", "`groupId`"),
        ({"type": "click", "userId": "u"}, "invalid_field", "`type`"),
        ({"event": "E", "userId": "u"}, "missing_field", "`type`"),
        (
            {"type": "track", "event": "E", "userId": "u", "timestamp": "1970-01-01T00:00:00Z"},
            "invalid_timestamp",
            "before 2000",
        ),
        (
            {"type": "track", "event": "E", "userId": "u", "timestamp": "2999-01-01T00:00:00Z"},
            "invalid_timestamp",
            "more than a day after",
        ),
        ({"type": "track", "event": "E", "userId": "x" * 256}, "invalid_field", "at most 255"),
        (
            {"type": "track", "event": "E", "userId": "u", "messageId": ""},
            "invalid_field",
            "`messageId`",
        ),
    ],
)
def test_rule_violations_name_the_field(body: dict, code: str, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        norm(body)
    assert info.value.code == code
    assert fragment in info.value.message


def test_endpoint_type_must_match_body_type() -> None:
    event = event_decoder.decode(b'{"type": "identify", "userId": "u"}')
    with pytest.raises(InvalidEvent, match="this endpoint takes `track`"):
        normalize(event, received_at=NOW, source_id="s", expected_type="track")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "userId",
                "anonymousId",
                "event",
                "timestamp",
                "properties",
                "type",
                "messageId",
                "sentAt",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=20),
            st.lists(st.integers(), max_size=2),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
    )
)
def test_arbitrary_bodies_are_either_valid_or_rejected_with_a_reason(body: dict) -> None:
    """No input crashes the validator: it decodes + normalises, or says which rule broke."""
    raw = msgspec.json.encode(body)
    try:
        event = event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        assert "$." in str(exc) or "Expected" in str(exc)
        return
    try:
        out = normalize(event, received_at=NOW, source_id="s", expected_type="track")
    except InvalidEvent as exc:
        assert exc.code in {"missing_field", "invalid_field", "invalid_timestamp"}
        assert "`" in exc.message
        return
    assert out["type"] == "track" and out["event"].strip()
    assert out.get("userId") or out.get("anonymousId")
