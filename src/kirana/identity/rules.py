"""Which identifiers an event carries, and the merge-protection rules.

An identifier is ``(type, value)``: ``user_id``, ``anonymous_id`` and external
ids found in traits (``email``, ``phone``) or context (``device_id``). Junk
values that many unrelated people share (empty, ``null``, ``anonymous``,
``-1``, all zeros, …) are never identifiers: one of them would merge strangers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Identifier = tuple[str, str]

_JUNK = re.compile(r"^(|null|none|nil|undefined|anonymous|unknown|n/?a|-1|0+|[0-]+|test)$", re.I)


@dataclass(frozen=True)
class IdentityRules:
    """Configurable merge protection.

    ``priority`` lists identifier types strongest first: when an event would
    break a limit, the weakest of its identifiers gives way (its link is not
    made). ``limits`` caps how many values of a type one profile may hold.
    """

    priority: tuple[str, ...] = ("user_id", "email", "phone", "device_id", "anonymous_id")
    limits: dict[str, int] = field(
        default_factory=lambda: {"user_id": 1, "email": 5, "phone": 5, "device_id": 20}
    )
    trait_ids: dict[str, str] = field(default_factory=lambda: {"email": "email", "phone": "phone"})
    blocked: frozenset[str] = frozenset()

    def rank(self, id_type: str) -> int:
        try:
            return self.priority.index(id_type)
        except ValueError:
            return len(self.priority)

    def limit(self, id_type: str) -> int | None:
        return self.limits.get(id_type)

    def usable(self, value: Any) -> str | None:
        """The normalised value, or None when it must never identify anyone."""
        if value is None or isinstance(value, bool | dict | list):
            return None
        text = str(value).strip()
        if _JUNK.match(text) or text.lower() in self.blocked or len(text) > 255:
            return None
        return text


@dataclass(frozen=True)
class Observation:
    """What one event tells the identity graph."""

    message_id: str
    timestamp: datetime
    identifiers: tuple[Identifier, ...]
    traits: dict[str, Any]


def _normalise(id_type: str, value: str) -> str:
    return value.lower() if id_type == "email" else value


def identifiers(
    event: dict[str, Any], rules: IdentityRules
) -> tuple[tuple[Identifier, ...], dict[str, Any]]:
    """An event's usable identifiers (strongest first) and the person traits it carries."""
    found: dict[Identifier, None] = {}

    def add(id_type: str, raw: Any) -> None:
        value = rules.usable(raw)
        if value is not None:
            found[(id_type, _normalise(id_type, value))] = None

    add("user_id", event.get("userId"))
    context = event.get("context") or {}
    traits: dict[str, Any] = {}
    context_traits = context.get("traits") if isinstance(context, dict) else None
    if isinstance(context_traits, dict):
        traits.update(context_traits)
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        traits.update(event["traits"])  # group traits describe the group, not the person
    for id_type, key in rules.trait_ids.items():
        add(id_type, traits.get(key))
    device = context.get("device") if isinstance(context, dict) else None
    if isinstance(device, dict):
        add("device_id", device.get("id"))
    add("anonymous_id", event.get("anonymousId"))
    if event.get("type") == "alias":
        # previousId is taken as an anonymous id whatever else it may be: deciding by
        # what was seen before would make the result depend on arrival order
        add("anonymous_id", event.get("previousId"))
    ordered = tuple(sorted(found, key=lambda i: (rules.rank(i[0]), i)))
    return ordered, traits


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def observe(event: dict[str, Any], rules: IdentityRules) -> Observation:
    """Identifiers and traits of a canonical event (strongest identifier first)."""
    ordered, traits = identifiers(event, rules)
    return Observation(event["messageId"], parse_timestamp(event["timestamp"]), ordered, traits)
