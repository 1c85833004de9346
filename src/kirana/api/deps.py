"""Dependencies shared by routes: the platform and the caller's access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kirana.audit.middleware import ACTOR_KEY
from kirana.runtime import Platform
from kirana.store.protocol import Token

_bearer = HTTPBearer(auto_error=False, description="An access token from `kirana tokens create`")


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def _token(
    platform: PlatformDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Token:
    if credentials is None:
        raise HTTPException(
            401,
            detail={
                "code": "missing_token",
                "message": "send `Authorization: Bearer <token>`; create one with "
                "`kirana tokens create NAME --role viewer`",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = platform.store.token_by_secret(credentials.credentials)  # never cached: revocation
    if token is None:
        raise HTTPException(
            401,
            detail={
                "code": "unknown_token",
                "message": "unknown or revoked access token (write keys only ingest)",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


def _admin(request: Request, token: Annotated[Token, Depends(_token)]) -> Token:
    """The caller's token if it is an admin's; either way the request is marked with it,
    so :class:`kirana.audit.middleware.AuditMiddleware` records a change or its refusal."""
    setattr(request.state, ACTOR_KEY, token)
    if token.role != "admin":
        raise HTTPException(
            403, detail={"code": "forbidden", "message": "this needs an admin token"}
        )
    return token


ViewerDep = Annotated[Token, Depends(_token)]
AdminDep = Annotated[Token, Depends(_admin)]
