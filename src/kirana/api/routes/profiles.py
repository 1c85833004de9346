"""Profile API: the single view of a customer, by any of their identifiers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from kirana.api.deps import PlatformDep, ViewerDep
from kirana.profiles.view import ID_TYPES, ProfileView, find_profile

router = APIRouter(prefix="/v1", tags=["profiles"])


class Identity(BaseModel):
    type: str
    value: str


class Merge(BaseModel):
    from_profile: str
    at: str
    message_id: str


class ProfilePublic(BaseModel):
    profile_id: str
    identities: list[Identity]
    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    audiences: list[str]
    merged_from: list[Merge]
    latest_events: list[dict[str, Any]]


def _public(view: ProfileView) -> ProfilePublic:
    return ProfilePublic.model_validate(view.as_dict())


@router.get("/profiles/{identifier}", response_model=ProfilePublic)
def get_profile(
    identifier: str,
    platform: PlatformDep,
    _: ViewerDep,
    id_type: str | None = Query(
        None, alias="type", description=f"Identifier type; without it: {', '.join(ID_TYPES)}"
    ),
    events: int = Query(20, ge=0, le=500, description="How many latest events to include"),
) -> ProfilePublic:
    """Identities, traits, computed traits, audiences and latest events of one customer."""
    if id_type is not None and id_type not in ID_TYPES:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_field",
                "message": f"`type` must be one of {', '.join(ID_TYPES)}",
            },
        )
    view = find_profile(platform.profiles, platform.settings.lake_dir, identifier, id_type, events)
    if view is None:
        raise HTTPException(
            404,
            detail={
                "code": "not_found",
                "message": f"no profile has the identifier {identifier!r}",
            },
        )
    return _public(view)
