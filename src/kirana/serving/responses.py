"""The personalise API's wire types (msgspec: fast to encode, and their JSON Schema is the
OpenAPI documentation)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Assignment(msgspec.Struct, frozen=True, omit_defaults=True):
    """One experiment the user is in for this request (see ``ExperimentAssigner``)."""

    experiment_id: str
    variation_id: str
    policy: str | None = None  # a ranking policy this variation uses, if it changes it


class FeedItem(msgspec.Struct, omit_defaults=True):
    """A product (from a recommender) or a content item, with the token to send back in
    ``properties.tracking_id`` of ``Promotion Viewed`` / ``Promotion Clicked`` /
    ``Product Clicked`` / ``Product Added``."""

    key: str
    type: Literal["product", "content"]
    tracking_id: str
    score: float | None = None
    title: str | None = None
    template: str | None = None
    payload: dict[str, Any] | None = None


class FeedWidget(msgspec.Struct, omit_defaults=True):
    key: str
    kind: str
    position: int
    items: list[FeedItem]
    title: str = ""
    template: str | None = None
    source: str | None = None  # the serving list the products came from ("popular": fallback)


class PersonalizeResponse(msgspec.Struct):
    decision_id: str
    placement: str
    profile_id: str | None
    segment: str
    cold_start: bool
    experiments: list[Assignment]
    widgets: list[FeedWidget]


class ErrorBody(msgspec.Struct):
    code: str
    message: str
