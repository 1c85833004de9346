"""Computed traits and audiences: define, estimate, list, refresh, history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.profiles import segments_service
from kirana.segments.rules import DefinitionError

router = APIRouter(prefix="/v1", tags=["segments"])
_DEFINITION = Body(
    ..., description="`conditions` or `sql` (and the trait's aggregation): docs/segments.md"
)


def _invalid(exc: DefinitionError) -> HTTPException:
    return HTTPException(422, detail={"code": "invalid_definition", "message": str(exc)})


def _definitions(platform: Any, kind: str) -> list[dict[str, Any]]:
    return [
        {
            **d.definition,
            "created_at": d.created_at.isoformat(),
            "updated_at": d.updated_at.isoformat(),
        }
        for d in platform.profiles.definitions(kind)
    ]


@router.get("/computed-traits")
def list_computed_traits(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every computed trait definition."""
    return _definitions(platform, "computed_trait")


@router.get("/audiences")
def list_audiences(platform: PlatformDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every audience definition, with its current size."""
    out = _definitions(platform, "audience")
    for item in out:
        item["size"] = len(platform.profiles.members(item["name"]))
    return out


def _save(kind: str, name: str, platform: Any, definition: dict[str, Any]) -> dict[str, Any]:
    try:
        return segments_service.save(platform.profiles, kind, name, definition)
    except DefinitionError as exc:
        raise _invalid(exc) from exc


def _delete(kind: str, name: str, platform: Any) -> None:
    try:
        removed = segments_service.delete(platform.profiles, kind, name)
    except DefinitionError as exc:
        raise HTTPException(409, detail={"code": "in_use", "message": str(exc)}) from exc
    if not removed:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no definition named {name!r}"}
        )


# One route per kind, not `/{kind}/{name}`: a catch-all there captured every other
# router's `PUT`/`DELETE /v1/<collection>/<name>` (destinations and syncs answered 404).
@router.put("/computed-traits/{name}")
def save_computed_trait(
    name: str, platform: PlatformDep, _: AdminDep, definition: dict[str, Any] = _DEFINITION
) -> dict[str, Any]:
    """Create or replace a computed trait."""
    return _save("computed_trait", name, platform, definition)


@router.put("/audiences/{name}")
def save_audience(
    name: str, platform: PlatformDep, _: AdminDep, definition: dict[str, Any] = _DEFINITION
) -> dict[str, Any]:
    """Create or replace an audience."""
    return _save("audience", name, platform, definition)


@router.delete("/computed-traits/{name}", status_code=204)
def delete_computed_trait(name: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete a computed trait (refused while an audience refers to it)."""
    _delete("computed_trait", name, platform)


@router.delete("/audiences/{name}", status_code=204)
def delete_audience(name: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete an audience (refused while an audience refers to it)."""
    _delete("audience", name, platform)


@router.post("/audiences/estimate")
async def estimate_audience(
    platform: PlatformDep, _: ViewerDep, definition: dict[str, Any] = _DEFINITION
) -> dict[str, int]:
    """How many profiles the audience would hold now (nothing is saved)."""
    try:
        return await run_in_threadpool(
            segments_service.estimate, platform.profiles, platform.settings.lake_dir, definition
        )
    except DefinitionError as exc:
        raise _invalid(exc) from exc


@router.get("/audiences/{name}/history")
def audience_history(
    name: str, platform: PlatformDep, _: ViewerDep, limit: int = Query(100, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    """Entries and exits, newest first."""
    return platform.profiles.audience_history(name, limit)


@router.post("/segments/refresh")
async def refresh(platform: PlatformDep, _: AdminDep, full: bool = False) -> dict[str, Any]:
    """Recompute computed traits and audiences now (incrementally unless `full`)."""
    report = await run_in_threadpool(platform.refresh_segments, full)
    return report.__dict__
