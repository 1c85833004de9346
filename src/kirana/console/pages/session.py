"""Signing in with an access token, and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import auth, flow
from kirana.console.templating import render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only console paths: a login link must not send anyone to another site."""
    if target and target.startswith("/console") and not target.startswith("/console/login"):
        return target
    return "/console"


def _cookie(response: RedirectResponse, value: str, max_age: int) -> None:
    response.set_cookie(
        auth.COOKIE,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=False,  # Kirana is often reached over plain HTTP on a private network
    )


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(
        request,
        "login.html",
        None,
        title="Sign in",
        next=_safe_next(next),
        notice=flow.notice(request),
    )


@router.post("/console/login")
def login(
    request: Request,
    platform: PlatformDep,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/console",
) -> Response:
    found = platform.store.token_by_secret(token.strip()) if token.strip() else None
    if found is None:
        error = {
            "code": "unknown_token",
            "message": "`token`: not a current access token (write keys only ingest; create "
            "a token with `kirana tokens create NAME --role viewer`)",
        }
        return render(
            request, "login.html", None, 401, title="Sign in", next=_safe_next(next), error=error
        )
    response = RedirectResponse(_safe_next(next), 303)
    from kirana.console.sessions import MAX_AGE_SECONDS

    _cookie(response, auth.session_cookie(platform, found), MAX_AGE_SECONDS)
    return response


@router.post("/console/logout")
def logout(platform: PlatformDep, user: auth.CheckedDep) -> RedirectResponse:
    """Sign out: this token's sessions end everywhere, a copied cookie included."""
    auth.sign_out(platform, user.token.id)
    response = flow.back("/console/login", "signed_out")
    response.delete_cookie(auth.COOKIE, path="/console", httponly=True, samesite="strict")
    return response
