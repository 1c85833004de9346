"""Management API: quarantine and pipeline status (access tokens only; sources and
tokens are in :mod:`kirana.api.routes.access`)."""

from __future__ import annotations

import os
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kirana.api.deps import PlatformDep, ViewerDep
from kirana.runtime import Platform

router = APIRouter(prefix="/v1", tags=["management"])


class QuarantinedPublic(BaseModel):
    log_offset: int
    source_id: str
    received_at: datetime
    batch_index: int | None
    message_id: str | None
    code: str
    reason: str
    raw: str


class ConsumerStatus(BaseModel):
    position: int
    lag_bytes: int
    errors: int
    last_error: str | None


class ApiProcessStatus(BaseModel):
    process: int
    pid: int | None
    alive: bool
    restarts: int
    last_error: str | None


class DecisionLogStatus(BaseModel):
    queued: int = Field(description="Decisions this process holds for its next flush.")
    written: int = Field(description="Decisions this process has flushed since it started.")
    dropped: int = Field(description="Decisions dropped: not encodable, or the queue was full.")
    last_error: str | None = Field(description="The last failed flush or append, if any.")
    spooled_files: int = Field(
        description="Batches every API process has spooled that are not yet in the "
        "`decisions` table (normally 0-2: they are appended once a second)."
    )
    spooled_bytes: int
    rejected_files: int = Field(
        description="Spooled files that were not a readable decisions batch (cut short by "
        "a power loss, or from another version), moved to `decision-spool/rejected/`."
    )


class Status(BaseModel):
    log_start: int
    log_end: int
    log_pending_bytes: int
    consumers: dict[str, ConsumerStatus]
    api_processes: list[ApiProcessStatus] = Field(
        description="The processes answering HTTP (kirana serve --api-processes): 0 is the "
        "first, which owns the event log; the others are restarted by it when they die."
    )
    decision_log: DecisionLogStatus


@router.get("/quarantine", response_model=list[QuarantinedPublic])
def list_quarantine(
    platform: PlatformDep,
    _: ViewerDep,
    source_id: str | None = None,
    after: int = Query(
        -1,
        ge=-1,
        le=2**63 - 1,  # SQLite's largest integer
        description="Only entries after this log offset (for paging)",
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[QuarantinedPublic]:
    entries = platform.store.list_quarantined(source_id=source_id, after_offset=after, limit=limit)
    return [QuarantinedPublic.model_validate(e, from_attributes=True) for e in entries]


@router.get("/status", response_model=Status)
def status(platform: PlatformDep, _: ViewerDep) -> Status:
    log = platform.log
    return Status(
        log_start=log.start_offset,
        log_end=log.end_offset,
        log_pending_bytes=log.pending_bytes,
        consumers={
            name: ConsumerStatus(
                position=c["position"],
                lag_bytes=c["lag"],
                errors=c["errors"],
                last_error=c["last_error"],
            )
            for name, c in platform.consumer_status().items()
        },
        api_processes=[
            ApiProcessStatus(process=0, pid=os.getpid(), alive=True, restarts=0, last_error=None)
        ]
        + [
            ApiProcessStatus(
                process=i,
                pid=r.pid,
                alive=r.alive,
                restarts=r.restarts + r.spawn_failures,
                last_error=r.last_spawn_error
                or (f"exited with {r.last_exit}" if r.last_exit is not None else None),
            )
            for i, r in enumerate(platform.replicas, start=1)
        ],
        decision_log=decision_log_status(platform),
    )


def decision_log_status(platform: Platform) -> DecisionLogStatus:
    from kirana.serving.decision_spool import backlog, rejected, spool_dir
    from kirana.serving.extension import SERVICE

    running = platform.services.get(SERVICE)  # None until this process has personalised
    log = running.decisions if running is not None else None
    spool = spool_dir(platform.settings.state_dir)
    files, size = backlog(spool)
    return DecisionLogStatus(
        queued=log.queued if log else 0,
        written=log.written if log else 0,
        dropped=log.dropped if log else 0,
        last_error=log.last_error if log else None,
        spooled_files=files,
        spooled_bytes=size,
        rejected_files=rejected(spool),
    )
