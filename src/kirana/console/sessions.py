"""Signed console sessions: what the cookie holds and how it is checked (pure, no I/O).

The cookie carries the access token's *id* (never the token), a CSRF token and the time
it was issued, signed with HMAC-SHA256 under a random secret kept in the data dir
(:func:`load_secret`). Each request looks the token id up again, so a revoked or deleted
token ends every console session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

#: Sessions older than this need a new login (a working day and a bit).
MAX_AGE_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    token_id: str
    csrf: str
    issued_at: float


def new_session(token_id: str, now: float) -> Session:
    return Session(token_id=token_id, csrf=secrets.token_urlsafe(24), issued_at=now)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def encode(session: Session, secret: bytes) -> str:
    """The cookie value: ``base64(json).base64(hmac)``."""
    payload = {"t": session.token_id, "c": session.csrf, "i": session.issued_at}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def decode(value: str | None, secret: bytes, now: float) -> Session | None:
    """The session in a cookie value, or None when it is absent, forged or expired."""
    if not value or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    if not hmac.compare_digest(_bytes(mac), _bytes(_mac(secret, body))):
        return None
    try:
        payload = json.loads(_unb64(body))
        session = Session(str(payload["t"]), str(payload["c"]), float(payload["i"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= now - session.issued_at <= MAX_AGE_SECONDS:
        return None
    return session


def _bytes(text: str) -> bytes:
    """For constant-time comparison: any text (a cookie can hold anything), as bytes; the
    replacement character never occurs in what is compared against (URL-safe base64)."""
    return text.encode("utf-8", "replace")


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(_bytes(session.csrf), _bytes(str(given)))


def load_secret(state_dir: Path) -> bytes:
    """The signing secret in ``<state>/console-secret`` (created once, readable by the owner
    only). Deleting the file signs everyone out."""
    path = Path(state_dir) / "console-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".console-secret.{secrets.token_hex(4)}")
    tmp.write_text(secrets.token_hex(32))
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)  # the first process to create it wins; the others read its secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())
