"""Profiles: find a customer by any identifier, their single view, and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import flow
from kirana.console.auth import AdminDep, UserDep
from kirana.console.templating import profile_url, render
from kirana.privacy.participants import ErasureIncomplete
from kirana.profiles.view import ID_TYPES, ProfileView, find_profile

router = APIRouter()
TIMELINE_EVENTS = 100


def _type_or_error(id_type: str | None) -> tuple[str | None, dict[str, str] | None]:
    if not id_type:
        return None, None
    if id_type not in ID_TYPES:
        return None, {
            "code": "invalid_field",
            "message": f"`type` must be one of {', '.join(ID_TYPES)}",
        }
    return id_type, None


@router.get("/console/profiles", response_class=HTMLResponse)
async def search_page(
    request: Request,
    platform: PlatformDep,
    user: UserDep,
    id: str = "",
    type: str = "",
) -> Response:
    """Search: one identifier (user id, e-mail, phone, anonymous or device id)."""
    id_type, error = _type_or_error(type)
    if id.strip() and error is None:
        view = await run_in_threadpool(
            find_profile, platform.profiles, platform.settings.lake_dir, id.strip(), id_type, 0
        )
        if view is not None:
            kind, value = _best_identifier(view)
            return RedirectResponse(profile_url(value, kind), 303)
        error = {"code": "not_found", "message": f"no profile has the identifier {id.strip()!r}"}
    return render(
        request,
        "profiles.html",
        user,
        200 if error is None else (404 if error["code"] == "not_found" else 422),
        title="Profiles",
        id_types=ID_TYPES,
        query=id,
        query_type=type,
        error=error,
        notice=flow.notice(request),
    )


def _best_identifier(view: ProfileView) -> tuple[str, str]:
    """The strongest identifier of a profile: the one its page is addressed by."""
    identities = view.profile.identities
    for kind in ID_TYPES:
        for t, v in identities:
            if t == kind:
                return t, v
    return identities[0]


def _assignments(platform: Any, view: ProfileView) -> list[dict[str, Any]]:
    """The variation this person gets in every running experiment (nothing is logged)."""
    from kirana.experiments.platform import assign_for_user

    ids = dict(view.profile.identities)
    user_id, anonymous_id = ids.get("user_id"), ids.get("anonymous_id")
    if not user_id and not anonymous_id:
        return []
    return [
        x.as_dict()
        for x in assign_for_user(platform, user_id=user_id, anonymous_id=anonymous_id, log=False)
    ]


@router.get("/console/profiles/view", response_class=HTMLResponse)
async def profile_page(
    request: Request, platform: PlatformDep, user: UserDep, id: str = "", type: str = ""
) -> HTMLResponse:
    """The single customer view."""
    id_type, error = _type_or_error(type)
    view = None
    if error is None:
        view = await run_in_threadpool(
            find_profile,
            platform.profiles,
            platform.settings.lake_dir,
            id,
            id_type,
            TIMELINE_EVENTS,
        )
        if view is None:
            error = {"code": "not_found", "message": f"no profile has the identifier {id!r}"}
    if view is None:
        return render(
            request,
            "profiles.html",
            user,
            404 if error and error["code"] == "not_found" else 422,
            title="Profiles",
            id_types=ID_TYPES,
            query=id,
            query_type=type,
            error=error,
        )
    assignments = await run_in_threadpool(_assignments, platform, view)
    kind, value = _best_identifier(view)
    return render(
        request,
        "profile.html",
        user,
        title=f"Profile {value}",
        view=view,
        data=view.as_dict(),
        key_type=kind,
        key_value=value,
        assignments=assignments,
    )


@router.post("/console/profiles/erase")
async def erase(
    request: Request,
    platform: PlatformDep,
    user: AdminDep,
    identifier: Annotated[str, Form()],
    type: Annotated[str, Form()],
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase a person everywhere (the same ``Platform.erase`` the API and CLI call); the
    form must repeat the identifier, so a stray click erases nobody."""
    id_type, error = _type_or_error(type)
    if error is None and confirm.strip() != identifier:
        error = {
            "code": "not_confirmed",
            "message": "`confirm`: type the identifier exactly to confirm the erasure",
        }
    if error is None and id_type is not None:
        value = identifier.lower() if id_type == "email" else identifier
        try:
            await run_in_threadpool(platform.erase, (id_type, value))
        except ErasureIncomplete as exc:
            error = {"code": "erasure_incomplete", "message": str(exc)}
        else:
            return flow.back("/console/profiles", "erased", identifier)
    return render(
        request,
        "profiles.html",
        user,
        422,
        title="Profiles",
        id_types=ID_TYPES,
        query=identifier,
        query_type=type,
        error=error or {"code": "invalid_field", "message": "`type` is required"},
    )
