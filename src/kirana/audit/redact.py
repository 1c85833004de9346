"""What an audit entry may say about a change: the request, minus secrets and personal data.

Pure. The summary is for people reading the log, so it keeps names, kinds and settings
and masks (``***``) every value that could let a reader act as someone else or identify a
person: fields named like credentials, a person's identifiers (an erasure must not leave
the erased id behind in the log), credentials inside URLs, DSNs and messages (by their
shape: :mod:`kirana.redaction`), and anything shaped like a Kirana token or write key
wherever it appears. Long values are cut short.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kirana.redaction import MASK as REDACTED
from kirana.redaction import is_secret_name
from kirana.redaction import redact as redact_shapes

#: Beside :func:`kirana.redaction.is_secret_name`'s credential names: whole connection
#: strings, session cookies and private/signing material are masked whole in the log.
_AUDIT_SECRET_WORDS = ("cookie", "dsn", "private", "signing")
#: Field names whose values identify a person (erasure requests, profile ids).
_PERSONAL_FIELDS = frozenset(
    {"identifier", "email", "phone", "user_id", "userid", "anonymous_id", "anonymousid"}
)
_KIRANA_SECRET = re.compile(r"\b(kt|wk)_[A-Za-z0-9_\-]{8,}")

MAX_STRING = 200
MAX_ITEMS = 50
MAX_DEPTH = 6


def is_sensitive_field(name: str) -> bool:
    """Whether a field called ``name`` holds a credential or a person's identifier."""
    key = name.lower().replace("-", "_")
    if key in _PERSONAL_FIELDS:
        return True
    if key == "key":  # experiments, flags and content name things by `key`
        return False
    return (
        key.endswith("key")
        or is_secret_name(key)
        or any(word in key for word in _AUDIT_SECRET_WORDS)
    )


def redact_text(text: str) -> str:
    """``text`` with credentials masked (by shape, and Kirana's own), cut short."""
    text = _KIRANA_SECRET.sub(REDACTED, redact_shapes(text))
    if len(text) > MAX_STRING:
        text = f"{text[:MAX_STRING]}… ({len(text)} characters)"
    return text


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON value fit for the audit log (see the module docstring)."""
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i == MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more fields"
                break
            name = redact_text(str(key))
            if str(key).lower() == "headers" and isinstance(item, dict):
                # any header may carry a credential under a name nobody can foresee
                out[name] = {redact_text(str(h)): REDACTED for h in item}
            else:
                out[name] = REDACTED if is_sensitive_field(str(key)) else redact(item, depth + 1)
        return out
    if isinstance(value, list):
        items = [redact(item, depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… {len(value) - MAX_ITEMS} more items")
        return items
    if isinstance(value, str):
        return redact_text(value)
    return value


def summarise_body(body: bytes, content_type: str | None, truncated: bool) -> Any:
    """The redacted request body: JSON as a value, anything else by its size and type."""
    if not body:
        return None
    if not truncated and (content_type or "").split(";")[0].strip() in ("application/json", ""):
        try:
            return redact(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            pass
    return {"bytes": len(body), "content_type": content_type, "truncated": truncated}


def summarise_query(query: dict[str, str]) -> dict[str, Any]:
    """The redacted query parameters."""
    return redact(query) if query else {}
