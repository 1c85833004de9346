"""Which events go to which destination, reshaped how (pure: no I/O).

A route filters a stream (event names, types, audiences, conditions on any
field) and maps fields (output name -> dotted path, or a constant). Audience
events become entity changes: entered is an ``upsert`` of the member into the
audience, exited a ``delete``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from kirana.destinations.config import Condition, Route
from kirana.destinations.records import OutboundRecord

AUDIENCE_EVENTS = {"Audience Entered": "upsert", "Audience Exited": "delete"}
_MISSING = object()


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path (``properties.products.0.price``), or None."""
    value = _walk(obj, path)
    return None if value is _MISSING else value


def _walk(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


def _compare(op: str, actual: Any, expected: Any) -> bool:
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "in":
            return actual in expected
        if op == "not_in":
            return actual not in expected
        if op == "contains":
            return expected in actual
        if actual is None:
            return False
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
    except TypeError:  # comparing a number with text never matches
        return False
    raise ValueError(f"unknown operator {op!r}")


def holds(condition: Condition, event: dict[str, Any]) -> bool:
    value = _walk(event, condition.field)
    if condition.op == "exists":
        return (value is not _MISSING) == bool(
            condition.value if condition.value is not None else True
        )
    return _compare(condition.op, None if value is _MISSING else value, condition.value)


def matches(route: Route, event: dict[str, Any]) -> bool:
    name = event.get("event")
    if route.stream == "audiences":
        if name not in AUDIENCE_EVENTS:
            return False
        audience = get_path(event, "properties.audience")
        if route.audiences and audience not in route.audiences:
            return False
    if route.events and name not in route.events:
        return False
    if route.types and event.get("type") not in route.types:
        return False
    return all(holds(c, event) for c in route.where)


def apply_mapping(mapping: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Build the output fields from ``source`` (empty mapping: ``source`` unchanged)."""
    if not mapping:
        return source
    out: dict[str, Any] = {}
    for target, spec in mapping.items():
        if isinstance(spec, dict):
            out[target] = spec.get("const")
        else:
            out[target] = get_path(source, spec)
    return out


def user_of(event: dict[str, Any]) -> str:
    return str(event.get("userId") or event.get("anonymousId") or "")


def route_event(routes: Sequence[Route], event: dict[str, Any]) -> OutboundRecord | None:
    """The record a destination with ``routes`` receives for ``event`` (first match wins)."""
    for route in routes:
        if not matches(route, event):
            continue
        user = user_of(event)
        key = str(get_path(event, route.key) or "") if route.key else user
        data = apply_mapping(route.mapping, event)
        message_id = str(event.get("messageId") or _content_id(event))
        if route.stream == "audiences":
            return OutboundRecord(
                record_id=message_id,
                user=user,
                key=key,
                action=AUDIENCE_EVENTS[event["event"]],  # type: ignore[arg-type]
                data=data,
                collection=get_path(event, "properties.audience"),
            )
        return OutboundRecord(message_id, user, key, "event", data)
    return None


def _content_id(event: dict[str, Any]) -> str:
    import json

    return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:32]
