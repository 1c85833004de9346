"""Audiences and computed traits: the builder with a live size estimate and a preview of
members, saving, membership over time and where each audience is sent."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kirana.api.deps import PlatformDep
from kirana.console import charts, flow
from kirana.console.auth import AdminDep, CheckedDep, UserDep
from kirana.console.templating import profile_url, render
from kirana.destinations.extension import delivery_store
from kirana.profiles import segments_service
from kirana.runtime import Platform
from kirana.segments.rules import DefinitionError

router = APIRouter()

EXAMPLES = {
    "loyal": {
        "name": "loyal",
        "description": "at least 3 orders in 30 days",
        "conditions": {"event": "Order Completed", "at_least": 3, "within_days": 30},
    },
    "cart_abandoners": {
        "name": "cart_abandoners",
        "description": "added to cart in the last 7 days and did not order within 24 hours",
        "conditions": {
            "event": "Product Added",
            "not_followed_by": "Order Completed",
            "within_hours": 24,
            "lookback_days": 7,
        },
    },
    "dairy_buyers": {
        "name": "dairy_buyers",
        "description": "ordered dairy in the last 30 days",
        "conditions": {
            "event": "Order Completed",
            "within_days": 30,
            "where": [{"property": "products[].category", "op": "eq", "value": "dairy"}],
        },
    },
}


def _member_label(platform: Platform, profile_id: str) -> dict[str, str]:
    """A member as its strongest identifier, linked to its profile page."""
    profile = platform.profiles.profile_by_id(profile_id)
    ids = dict(profile.identities) if profile else {}
    for kind in ("user_id", "email", "phone", "anonymous_id", "device_id"):
        if kind in ids:
            return {"label": ids[kind], "url": profile_url(ids[kind], kind)}
    return {"label": profile_id, "url": ""}


def _sent_to(platform: Platform, name: str) -> list[str]:
    """Destinations with a route taking this audience's entries and exits."""
    out = []
    for config in delivery_store(platform).destinations():
        for route in config.routes:
            if route.stream == "audiences" and (not route.audiences or name in route.audiences):
                out.append(config.name)
                break
    return out


@router.get("/console/audiences", response_class=HTMLResponse)
def audiences_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    audiences = [
        {
            **d.definition,
            "updated_at": d.updated_at,
            "size": len(platform.profiles.members(d.name)),
            "sent_to": _sent_to(platform, d.name),
        }
        for d in platform.profiles.definitions("audience")
    ]
    traits = [
        {**d.definition, "updated_at": d.updated_at}
        for d in platform.profiles.definitions("computed_trait")
    ]
    return render(
        request,
        "audiences.html",
        user,
        title="Audiences and traits",
        audiences=audiences,
        traits=traits,
        notice=flow.notice(request),
    )


def _builder(
    request: Request, user: Any, text: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    return render(
        request,
        "audience_builder.html",
        user,
        status,
        title="Audience builder",
        text=text,
        examples=EXAMPLES,
        **extra,
    )


@router.get("/console/audiences/new", response_class=HTMLResponse)
def builder_page(
    request: Request, platform: PlatformDep, user: UserDep, example: str = "loyal", edit: str = ""
) -> HTMLResponse:
    definition: dict[str, Any] = EXAMPLES.get(example, EXAMPLES["loyal"])
    if edit:
        found = {d.name: d.definition for d in platform.profiles.definitions("audience")}
        definition = found.get(edit, definition)
    return _builder(request, user, json.dumps(definition, indent=2))


@router.post("/console/audiences/estimate")
async def estimate(
    platform: PlatformDep, user: CheckedDep, definition: Any = Body(...)
) -> JSONResponse:
    """Size and a preview of members of an unsaved definition (nothing is saved; viewers
    may ask, as with ``POST /v1/audiences/estimate``)."""
    if not isinstance(definition, dict):
        raise HTTPException(
            422, detail={"code": "invalid_definition", "message": "a definition is a JSON object"}
        )
    try:
        found = await run_in_threadpool(
            segments_service.preview, platform.profiles, platform.settings.lake_dir, definition
        )
    except DefinitionError as exc:
        raise HTTPException(
            422, detail={"code": "invalid_definition", "message": str(exc)}
        ) from exc
    members = [_member_label(platform, pid) for pid in found.pop("members")]
    return JSONResponse({**found, "preview": members})


@router.post("/console/audiences")
def save(
    request: Request,
    platform: PlatformDep,
    user: AdminDep,
    definition: Annotated[str, Form()] = "",
) -> Response:
    """Save (create or replace) the audience named in the definition."""
    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        error = {"code": "invalid_json", "message": f"`definition`: not valid JSON ({exc})"}
        return _builder(request, user, definition, 422, error=error)
    name = parsed.get("name") if isinstance(parsed, dict) else None
    if not isinstance(name, str) or not name:
        error = {"code": "invalid_definition", "message": "`name`: required (a string)"}
        return _builder(request, user, definition, 422, error=error)
    try:
        segments_service.save(platform.profiles, "audience", name, parsed)
    except DefinitionError as exc:
        error = {"code": "invalid_definition", "message": str(exc)}
        return _builder(request, user, definition, 422, error=error)
    return flow.back(f"/console/audiences/{name}", "audience_saved", name)


@router.get("/console/audiences/{name}", response_class=HTMLResponse)
def audience_page(
    request: Request, name: str, platform: PlatformDep, user: UserDep
) -> HTMLResponse:
    found = {d.name: d for d in platform.profiles.definitions("audience")}
    if name not in found:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no audience named {name!r}"}
        )
    members = platform.profiles.members(name)
    history = platform.profiles.audience_history(name, 10_000)
    # walk back from today's size: each entry raised it by one, each exit lowered it
    size, xs, ys = len(members), [], []
    for change in history:
        xs.append(str(change["at"]))
        ys.append(size)
        size += -1 if change["change"] == "entered" else 1
    figure = charts.lines("Members over time", {"members": (xs[::-1], ys[::-1])}, "profiles")
    return render(
        request,
        "audience.html",
        user,
        title=f"Audience {name}",
        charts=True,
        name=name,
        definition=found[name].definition,
        size=len(members),
        members=[_member_label(platform, pid) for pid in sorted(members)[:50]],
        history=[{**h, **_member_label(platform, h["profile_id"])} for h in history[:50]],
        figure=figure,
        sent_to=_sent_to(platform, name),
        notice=flow.notice(request),
    )
