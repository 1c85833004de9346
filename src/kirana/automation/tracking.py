"""Tracking tokens: what an app sends back with an impression or a click, and what it means.

Every item a decision shows gets a token. The app puts it in ``properties.tracking_id`` of
its ``Promotion Viewed`` / ``Promotion Clicked`` / ``Product Clicked`` / ``Product Added``
events, and the feedback consumer turns the event into statistics with nothing but the token:
it names the decision slot (``decision_id``, widget and item positions, which together are the
core's :func:`~kirana.automation.ranking.tracking_id`) *and* everything the statistics need
(placement, learning segment, arms and their content epochs).

Self-describing rather than a key into the decision log, because the feedback path must not
depend on the decision log being written yet (it is batched), nor on the consumer running in
the API's process; the cost is ~130 bytes per item. Tokens are not signed: a forged token
can only add noise to the statistics of arms that exist, as a forged event could anyway.

Format: ``k1.`` + base64url (no padding) of a msgpack array. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Literal

import msgspec

from kirana.automation.content import Epoch

PREFIX = "k1."
FeedbackKind = Literal["impression", "click"]


class TrackingToken(msgspec.Struct, array_like=True, frozen=True):
    """One shown slot of one decision, with what its feedback updates."""

    decision_id: str
    widget_position: int
    item_position: int
    placement: str
    segment: str
    widget: str
    widget_epoch: tuple[int, float]
    item_arm: str | None  # content items are arms; recommended products are not
    item_epoch: tuple[int, float]

    @property
    def slot_id(self) -> str:
        """The core tracking id, ``{decision_id}.{widget position}.{item position}``."""
        return f"{self.decision_id}.{self.widget_position}.{self.item_position}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TrackingToken)


class TokenError(ValueError):
    """A tracking id that is not a Kirana token (or is damaged)."""


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def encode_token(token: TrackingToken) -> str:
    # binascii directly: base64.urlsafe_b64encode's wrappers cost more than the encoding,
    # and a decision makes ~30 tokens
    raw = binascii.b2a_base64(_encoder.encode(token), newline=False)
    return PREFIX + raw.translate(_URLSAFE).rstrip(b"=").decode("ascii")


_SMALL_INTS = [_encoder.encode(i) for i in range(256)]
_ARRAY_HEADER = _encoder.encode((None,) * len(TrackingToken.__struct_fields__))[
    : -len(TrackingToken.__struct_fields__)
]


def encode_tokens(
    decision_id: str,
    widget_position: int,
    placement: str,
    segment: str,
    widget: str,
    widget_epoch: Epoch,
    items: Iterable[tuple[int, str | None, Epoch]],
) -> list[str]:
    """``encode_token`` for every item of one shown widget, ``items`` as (position, arm,
    epoch): the same strings, but the fields the items share are encoded once (a msgpack
    array is its header then its elements, so the parts can be joined)."""
    enc, ints = _encoder.encode, _SMALL_INTS
    head = (
        _ARRAY_HEADER
        + enc(decision_id)
        + (ints[widget_position] if 0 <= widget_position < 256 else enc(widget_position))
    )
    shared = enc(placement) + enc(segment) + enc(widget) + enc(widget_epoch)
    b2a, urlsafe = binascii.b2a_base64, _URLSAFE
    tails: dict[tuple[str | None, Epoch], bytes] = {}
    out = []
    for position, arm, epoch in items:
        tail = tails.get((arm, epoch))
        if tail is None:
            tail = tails[(arm, epoch)] = shared + enc(arm) + enc(epoch)
        pos = ints[position] if 0 <= position < 256 else enc(position)
        raw = b2a(head + pos + tail, newline=False)
        out.append(PREFIX + raw.translate(urlsafe).rstrip(b"=").decode("ascii"))
    return out


def decode_token(value: str) -> TrackingToken:
    """The token inside ``value``; :class:`TokenError` when it is not one."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        raise TokenError(f"tracking_id must start with {PREFIX!r}")
    body = value[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return _decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise TokenError(f"tracking_id is damaged ({exc})") from exc


def feedback_targets(
    kind: FeedbackKind,
    widget: str,
    widget_epoch: Epoch,
    item_arm: str | None,
    item_epoch: Epoch,
    item_position: int,
) -> list[tuple[str, Epoch]]:
    """The arms (with the epochs they were shown under) that one piece of feedback updates.

    An impression counts for the item's arm, and for the widget's arm only on its first item
    (a widget is seen once however many items it shows). A click counts for the item and its
    widget. Recommended products are not arms: their feedback counts for the widget.
    """
    targets: list[tuple[str, Epoch]] = []
    if item_arm is not None:
        targets.append((item_arm, item_epoch))
    if kind == "click" or item_position == 0:
        targets.append((widget, widget_epoch))
    return targets
