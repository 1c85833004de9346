"""``encode_tokens`` (one widget's items at once) gives exactly ``encode_token``'s strings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.automation.tracking import TrackingToken, decode_token, encode_token, encode_tokens

TEXT = st.text(min_size=0, max_size=40)
EPOCH = st.tuples(st.integers(0, 2**40), st.floats(allow_nan=False, width=64))
POSITION = st.one_of(st.integers(0, 130), st.integers(0, 70_000))


@settings(max_examples=300, deadline=None)
@given(
    decision_id=TEXT,
    widget_position=POSITION,
    placement=TEXT,
    segment=TEXT,
    widget=TEXT,
    widget_epoch=EPOCH,
    items=st.lists(st.tuples(POSITION, st.one_of(st.none(), TEXT), EPOCH), max_size=15),
)
def test_the_same_tokens_as_one_at_a_time(
    decision_id: str,
    widget_position: int,
    placement: str,
    segment: str,
    widget: str,
    widget_epoch: tuple[int, float],
    items: list[tuple[int, str | None, tuple[int, float]]],
) -> None:
    tokens = encode_tokens(
        decision_id, widget_position, placement, segment, widget, widget_epoch, items
    )
    expected = [
        TrackingToken(
            decision_id, widget_position, p, placement, segment, widget, widget_epoch, arm, epoch
        )
        for p, arm, epoch in items
    ]
    assert tokens == [encode_token(t) for t in expected]
    assert [decode_token(t) for t in tokens] == expected
