"""Privacy API: erase people everywhere Kirana writes, and suppress their future events."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kirana.api.deps import AdminDep, PlatformDep
from kirana.privacy.erase import ErasedPerson, ErasureReport
from kirana.privacy.participants import ErasureIncomplete
from kirana.privacy.targets import ErasureTarget
from kirana.profiles.view import ID_TYPES

router = APIRouter(prefix="/v1/privacy", tags=["privacy"])

#: People per batch request: one erasure holds every store's rewrite for all of them.
MAX_BATCH = 10_000


class ErasureRequest(BaseModel):
    identifier: str = Field(min_length=1, max_length=255)
    type: str | None = Field(None, description=f"One of {', '.join(ID_TYPES)}; any if absent")


class BatchErasureRequest(BaseModel):
    people: list[ErasureRequest] = Field(min_length=1, max_length=MAX_BATCH)


class Identity(BaseModel):
    type: str
    value: str


class ErasureCounts(BaseModel):
    lake_rows_deleted: int
    log_records_redacted: int
    quarantine_rows_deleted: int
    details: dict[str, dict[str, int]] = Field(
        description="What each other subsystem removed (model outputs, serving, decisions, "
        "exposures, sync snapshots, delivery queues), by subsystem and store"
    )
    rewrites: dict[str, int] = Field(
        description="How many times each store was rewritten (once per request, any batch)"
    )


class ErasurePublic(ErasureCounts):
    profile_id: str | None = Field(
        description="The erased profile; null when no profile held the identifier (never "
        "seen, only quarantined, or already erased)"
    )
    identities: list[Identity] = Field(description="Identifiers found on the profile")
    suppressed: list[Identity] = Field(
        description="Identifiers whose events are no longer stored, from now on"
    )


class PersonPublic(BaseModel):
    identifier: str
    type: str | None
    profile_ids: list[str]
    suppressed: list[Identity]


class BatchErasurePublic(ErasureCounts):
    people: list[PersonPublic]


def _target(body: ErasureRequest, where: str) -> ErasureTarget:
    if body.type is not None and body.type not in ID_TYPES:
        raise HTTPException(
            422,
            detail={
                "code": "invalid_field",
                "message": f"`{where}type` must be one of {', '.join(ID_TYPES)}",
            },
        )
    return ErasureTarget(body.identifier, body.type)


async def _erase(platform, targets: list[ErasureTarget]) -> ErasureReport:
    try:
        return await run_in_threadpool(platform.erase_many, targets)
    except ErasureIncomplete as exc:
        detail = {"code": "erasure_incomplete", "message": str(exc)}
        raise HTTPException(500, detail=detail) from exc


def _counts(report: ErasureReport) -> dict:
    return {
        "lake_rows_deleted": report.lake_rows_deleted,
        "log_records_redacted": report.log_records_redacted,
        "quarantine_rows_deleted": report.quarantine_rows_deleted,
        "details": report.details,
        "rewrites": report.rewrites,
    }


def _ids(identities) -> list[Identity]:
    return [Identity(type=t, value=v) for t, v in identities]


@router.post("/erasures", response_model=ErasurePublic)
async def erase_person(body: ErasureRequest, platform: PlatformDep, _: AdminDep) -> ErasurePublic:
    """Erase the person holding ``identifier`` (of ``type``, or of any type) everywhere
    Kirana writes, and suppress their future events. An identifier no profile holds is
    still suppressed and removed from the log, quarantine and lake (200, zero counts).
    Running it again is harmless and finishes an erasure that failed part-way
    (500 `erasure_incomplete`)."""
    report = await _erase(platform, [_target(body, "")])
    person: ErasedPerson = report.people[0]
    profile_id = person.profile_ids[0] if person.profile_ids else None
    found = person.identities if person.profile_ids else []
    return ErasurePublic(
        profile_id=profile_id,
        identities=_ids(found),
        suppressed=_ids(person.identities),
        **_counts(report),
    )


@router.post("/erasures/batch", response_model=BatchErasurePublic)
async def erase_people(
    body: BatchErasureRequest, platform: PlatformDep, _: AdminDep
) -> BatchErasurePublic:
    """Erase many people at once: each store is rewritten once for the whole batch (a
    SQLite rebuild or a Delta rewrite costs the same for one person as for thousands).
    Counts are for the batch; each person gets their profiles and suppressed identifiers."""
    targets = [_target(p, f"people[{i}].") for i, p in enumerate(body.people)]
    report = await _erase(platform, targets)
    return BatchErasurePublic(
        people=[
            PersonPublic(
                identifier=p.target.identifier,
                type=p.target.type,
                profile_ids=p.profile_ids,
                suppressed=_ids(p.identities),
            )
            for p in report.people
        ],
        **_counts(report),
    )
