"""Computed traits and audiences: define, estimate, list, refresh, history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from kirana.api.deps import AdminDep, PlatformDep, ViewerDep
from kirana.profiles import segments_service
from kirana.segments.rules import DefinitionError

router = APIRouter(prefix="/v1", tags=["segments"])

_KIND_PATHS = {"computed-traits": "computed_trait", "audiences": "audience"}


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


@router.put("/{kind}/{name}")
def save_definition(
    kind: str, name: str, platform: PlatformDep, _: AdminDep, definition: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    """Create or replace a computed trait (`computed-traits`) or an audience (`audiences`)."""
    if kind not in _KIND_PATHS:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no such collection {kind!r}"}
        )
    try:
        return segments_service.save(platform.profiles, _KIND_PATHS[kind], name, definition)
    except DefinitionError as exc:
        raise _invalid(exc) from exc


@router.delete("/{kind}/{name}", status_code=204)
def delete_definition(kind: str, name: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete a definition (refused while an audience refers to it)."""
    if kind not in _KIND_PATHS:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no such collection {kind!r}"}
        )
    try:
        removed = segments_service.delete(platform.profiles, _KIND_PATHS[kind], name)
    except DefinitionError as exc:
        raise HTTPException(409, detail={"code": "in_use", "message": str(exc)}) from exc
    if not removed:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no definition named {name!r}"}
        )


@router.post("/audiences/estimate")
async def estimate_audience(
    platform: PlatformDep, _: ViewerDep, definition: dict[str, Any] = Body(...)
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
