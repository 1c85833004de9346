"""Who is signed in: the session cookie, the token behind it, its role and the CSRF check.

The login form takes an access token and checks it with the same lookup the API uses
(``OperationalStore.token_by_secret``); the cookie then holds only the token's id
(:mod:`kirana.console.sessions`). Every request resolves that id again, so revoking the
token ends the session. Every POST must carry the session's CSRF token (a form field or
the ``X-CSRF-Token`` header); changes need the admin role, as in the API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request

from kirana.api.deps import PlatformDep
from kirana.audit.middleware import ACTOR_KEY
from kirana.console import sessions
from kirana.runtime import Platform
from kirana.store.protocol import Token

COOKIE = "kirana_console"


@dataclass(frozen=True, slots=True)
class User:
    """The signed-in person: their token (id, name, role) and session."""

    token: Token
    session: sessions.Session

    @property
    def is_admin(self) -> bool:
        return self.token.role == "admin"

    @property
    def csrf(self) -> str:
        return self.session.csrf


def secret(platform: Platform) -> bytes:
    return platform.service(
        "console.secret", lambda: sessions.load_secret(platform.settings.state_dir)
    )


def active_token(platform: Platform, token_id: str) -> Token | None:
    """The token with this id if it still grants access (neither revoked nor deleted)."""
    token = platform.store.token_by_id(token_id)
    return token if token is not None and token.revoked_at is None else None


def session_cookie(platform: Platform, token: Token) -> str:
    return sessions.encode(sessions.new_session(token.id, time.time()), secret(platform))


def _to_login(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(
        303,
        detail={"code": "login_required", "message": "sign in to the console first"},
        headers={"Location": f"/console/login?next={quote(target, safe='')}"},
    )


def _signed_out_key(token_id: str) -> str:
    return f"console.signed_out.{token_id}"


def sign_out(platform: Platform, token_id: str) -> None:
    """End every console session of this token issued until now (all its browsers)."""
    platform.store.set_setting(_signed_out_key(token_id), repr(time.time()))


def _signed_out_after(platform: Platform, session: sessions.Session) -> bool:
    stamp = platform.store.get_setting(_signed_out_key(session.token_id))
    return stamp is not None and session.issued_at <= float(stamp)


def current_user(request: Request, platform: PlatformDep) -> User:
    """The signed-in user, or a redirect to the login page."""
    session = sessions.decode(request.cookies.get(COOKIE), secret(platform), time.time())
    token = active_token(platform, session.token_id) if session else None
    if session is None or token is None or _signed_out_after(platform, session):
        raise _to_login(request)
    return User(token, session)


async def checked_user(request: Request, user: Annotated[User, Depends(current_user)]) -> User:
    """The user of a POST whose CSRF token matches the session's."""
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = (await request.form()).get("csrf")
    if not sessions.csrf_matches(user.session, given if isinstance(given, str) else None):
        raise HTTPException(
            403,
            detail={
                "code": "csrf_failed",
                "message": "`csrf`: the form's CSRF token is missing or belongs to another "
                "session; reload the page and try again",
            },
        )
    return user


def admin_user(request: Request, user: Annotated[User, Depends(checked_user)]) -> User:
    """An admin's checked POST; viewers are refused as in the API. Either way the request
    is marked with the token, so the audit log records the change or its refusal, as for
    the API (:mod:`kirana.audit.middleware`)."""
    setattr(request.state, ACTOR_KEY, user.token)
    if not user.is_admin:
        raise HTTPException(
            403, detail={"code": "forbidden", "message": "this needs an admin token"}
        )
    return user


UserDep = Annotated[User, Depends(current_user)]
CheckedDep = Annotated[User, Depends(checked_user)]
AdminDep = Annotated[User, Depends(admin_user)]
