"""Which destination settings hold credentials: masking them, and keeping them on replace.

A set secret is shown as ``"***"`` (:data:`kirana.redaction.MASK`): the signing
``secret``, Segment's ``write_key``, the SMTP ``password``, every header *value*
(``headers`` names stay), and the credentials inside ``url`` and ``dsn`` (user info
password, ``?token=``-like parameters, libpq ``password=``). A client that reads a
destination and sends it back (``replace``) therefore sends masks; each mask, or a
secret-bearing setting left out, keeps the stored value, so changing the batch size
does not need the credentials again — as long as the destination still talks to the same
server (:func:`target_of`; its ``url``, ``dsn``, ``host`` and ``port`` left out keep theirs).
"""

from __future__ import annotations

import base64
from typing import Any

from kirana.redaction import MASK, redact, secrets_in

SECRET_FIELDS = frozenset({"secret", "write_key", "password"})
"""Settings that are a credential as a whole."""
CONNECTION_FIELDS = frozenset({"url", "dsn"})
"""Settings that are a connection string or URL which may embed a credential."""
HEADERS = "headers"


def masked_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as they may be shown: every credential replaced by the mask."""
    out: dict[str, Any] = {}
    for name, value in settings.items():
        if name in SECRET_FIELDS:
            out[name] = MASK if value else value
        elif name == HEADERS and isinstance(value, dict):
            out[name] = {header: MASK for header in value}
        elif name in CONNECTION_FIELDS and isinstance(value, str):
            out[name] = redact(value)
        else:
            out[name] = value
    return out


def secret_values(settings: dict[str, Any]) -> set[str]:
    """Every credential the settings hold, to scrub from error texts by value."""
    found: set[str] = set()
    for name, value in settings.items():
        if name in SECRET_FIELDS and isinstance(value, str):
            found.add(value)
            found.add(_basic_auth(value))  # Segment's write key travels as Basic auth
        elif name == HEADERS and isinstance(value, dict):
            found.update(str(v) for v in value.values())
            found.update(_token_parts(value))
        elif name in CONNECTION_FIELDS and isinstance(value, str):
            found.update(secrets_in(value))
    return {value for value in found if value}


def _basic_auth(user: str) -> str:
    return base64.b64encode(f"{user}:".encode()).decode()


def _token_parts(headers: dict[str, Any]) -> set[str]:
    """``Bearer abc`` / ``Basic abc``: the credential alone may be echoed, without its scheme."""
    return {str(v).split(None, 1)[1] for v in headers.values() if len(str(v).split(None, 1)) == 2}


def keep_stored_secrets(
    raw: dict[str, Any], stored_kind: str | None, stored: dict[str, Any] | None
) -> dict[str, Any]:
    """``raw`` (a replacing definition) with masks and omitted credentials taken from ``stored``.

    Only when the kind and the target (:func:`target_of`) are unchanged: a destination
    that became another kind has other settings, and one pointed at another server must
    be given its credentials again — otherwise anyone allowed to edit it could have Kirana
    send the stored secret (a header, a signing key, a password) to a server of theirs. A
    mask with nothing kept behind it is left as it is, and refused by :func:`masks_left`.
    """
    settings = raw.get("settings")
    if stored is None or raw.get("kind") != stored_kind or not isinstance(settings, dict):
        return raw
    left_out = (CONNECTION_FIELDS | set(TARGET_FIELDS)) - settings.keys()
    merged = {**{name: stored[name] for name in left_out if name in stored}, **settings}
    if target_of(merged) != target_of(stored):
        return raw  # a stored credential never follows the destination to another server
    for name in SECRET_FIELDS | CONNECTION_FIELDS:
        if name not in stored:
            continue
        if (
            name not in merged
            or (name in SECRET_FIELDS and merged[name] == MASK)
            or (name in CONNECTION_FIELDS and merged[name] == redact(str(stored[name])))
        ):
            merged[name] = stored[name]
    if HEADERS in stored and isinstance(stored[HEADERS], dict):
        if HEADERS not in merged:
            merged[HEADERS] = stored[HEADERS]
        elif isinstance(merged[HEADERS], dict):
            by_name = {k.lower(): v for k, v in stored[HEADERS].items()}
            merged[HEADERS] = {
                k: by_name.get(k.lower(), v) if v == MASK else v for k, v in merged[HEADERS].items()
            }
    return {**raw, "settings": merged}


TARGET_FIELDS = ("host", "port")
"""Settings that, beside ``url`` and ``dsn``, say which server a destination talks to."""


def target_of(settings: dict[str, Any]) -> tuple[Any, ...]:
    """Where a destination's credentials go: its URL or DSN without their credentials (as
    shown), and its host and port. Two settings with the same target may share secrets."""
    connections = tuple(
        redact(str(settings[name])) if settings.get(name) is not None else None
        for name in sorted(CONNECTION_FIELDS)
    )
    return connections + tuple(settings.get(name) for name in TARGET_FIELDS)


def masks_left(settings: dict[str, Any]) -> str | None:
    """A message naming the first setting that still holds a mask, or None."""
    for name, value in settings.items():
        if name in SECRET_FIELDS and value == MASK:
            return (
                f"`settings.{name}`: {MASK!r} stands for a stored secret and there is none "
                "to keep (none is stored, or the destination now points at another server, "
                "which never receives a stored secret); send the value itself"
            )
        if name == HEADERS and isinstance(value, dict):
            for header, header_value in value.items():
                if header_value == MASK:
                    return (
                        f"`settings.headers.{header}`: {MASK!r} stands for a stored value "
                        "and this destination has no such header; send the value itself"
                    )
        if name in CONNECTION_FIELDS and isinstance(value, str) and MASK in value:
            return (
                f"`settings.{name}`: holds {MASK!r}; send it exactly as shown to keep the "
                "stored credential, or the whole value with the credential to change it"
            )
    return None
