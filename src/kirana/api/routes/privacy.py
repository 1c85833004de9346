"""Privacy API: erase a person everywhere Kirana writes, and suppress their future events."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kirana.api.deps import AdminDep, PlatformDep
from kirana.privacy.participants import ErasureIncomplete
from kirana.profiles.view import ID_TYPES

router = APIRouter(prefix="/v1/privacy", tags=["privacy"])


class ErasureRequest(BaseModel):
    identifier: str
    type: str | None = None


class ErasurePublic(BaseModel):
    profile_id: str | None = Field(
        description="The erased profile; null when it was already gone (a repeated erasure)"
    )
    identities: list[dict[str, str]]
    lake_rows_deleted: int
    log_records_redacted: int
    quarantine_rows_deleted: int
    details: dict[str, dict[str, int]] = Field(
        description="What each other subsystem removed (model outputs, serving, decisions, "
        "exposures, sync snapshots, delivery queues), by subsystem and store"
    )


@router.post("/erasures", response_model=ErasurePublic)
async def erase_person(body: ErasureRequest, platform: PlatformDep, _: AdminDep) -> ErasurePublic:
    """Erase the profile holding ``identifier`` (of ``type``, or of any type) everywhere
    Kirana writes, and suppress the person's future events. Running it again is harmless
    and finishes an erasure that failed part-way (500 `erasure_incomplete`)."""
    types = [body.type] if body.type else list(ID_TYPES)
    if body.type is not None and body.type not in ID_TYPES:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_field",
                "message": f"`type` must be one of {', '.join(ID_TYPES)}",
            },
        )
    for id_type in types:
        value = body.identifier.lower() if id_type == "email" else body.identifier
        try:
            report = await run_in_threadpool(platform.erase, (id_type, value))
        except ErasureIncomplete as exc:
            detail = {"code": "erasure_incomplete", "message": str(exc)}
            raise HTTPException(500, detail=detail) from exc
        if report is not None:
            return ErasurePublic(
                profile_id=report.profile_id,
                identities=[{"type": t, "value": v} for t, v in report.identities],
                lake_rows_deleted=report.lake_rows_deleted,
                log_records_redacted=report.log_records_redacted,
                quarantine_rows_deleted=report.quarantine_rows_deleted,
                details=report.details,
            )
    raise HTTPException(
        404,
        detail={
            "code": "not_found",
            "message": f"no profile has the identifier {body.identifier!r}",
        },
    )
