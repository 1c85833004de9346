"""Replication sources and warehouse export over HTTP (admin token).

Routes stay thin: definitions and progress live in the replication state file
and the Delta tables, so the API and the replicating job (maybe in another
process) agree without sharing memory.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, RootModel

from kirana.api.deps import AdminDep, PlatformDep
from kirana.redaction import scrub, secrets_in
from kirana.replication.specs import NAME_PATTERN, SourceConfig, TableConfig, secret_values

router = APIRouter(prefix="/v1", tags=["replication"])


class SourceDefinition(RootModel[SourceConfig]):
    """A source definition; `kind` (postgres, mysql, files) says which fields apply."""


def _state(platform: Any):
    from kirana.replication.state import ReplicationState

    return platform.service(
        "replication-state", lambda: ReplicationState(platform.settings.state_dir)
    )


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(404, detail={"code": "not_found", "message": str(exc)})


@router.get("/replication/sources")
def list_sources(platform: PlatformDep, _: AdminDep) -> list[dict[str, Any]]:
    """Every replication source with its progress (passwords hidden)."""
    from kirana.replication.service import source_status

    state = _state(platform)
    return [source_status(state, platform.settings.lake_dir, c.name) for c in state.list()]


@router.post(
    "/replication/sources",
    status_code=201,
    responses={
        409: {"description": "A source of that name exists (`exists`)"},
        422: {"description": "A table is missing or has no usable key (`table_refused`)"},
    },
)
def add_source(
    platform: PlatformDep, _: AdminDep, body: SourceDefinition = Body(...)
) -> dict[str, Any]:
    """Add a PostgreSQL, MySQL/MariaDB or file-drop source (`kind`); `kirana serve` syncs it."""
    from kirana.replication.checks import TableRefused, check_tables
    from kirana.replication.service import source_status

    definition = body.root
    state = _state(platform)
    try:
        check_tables(definition)  # a keyless or missing table is refused now, not at sync
    except TableRefused as exc:
        raise HTTPException(422, detail={"code": "table_refused", "message": str(exc)}) from exc
    try:
        state.add(definition)
    except ValueError as exc:
        raise HTTPException(409, detail={"code": "exists", "message": str(exc)}) from exc
    return source_status(state, platform.settings.lake_dir, definition.name)


@router.get("/replication/sources/{name}")
def get_source(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """One source: position, lag, rows applied, last error, tables, recent files."""
    from kirana.replication.service import source_status
    from kirana.replication.state import SourceNotFound

    try:
        return source_status(_state(platform), platform.settings.lake_dir, name)
    except SourceNotFound as exc:
        raise _not_found(exc) from exc


class AddedTables(BaseModel):
    """Tables to add to a PostgreSQL or MySQL source."""

    tables: list[TableConfig] = Field(min_length=1)


@router.post(
    "/replication/sources/{name}/tables",
    responses={
        404: {"description": "No such source (`not_found`)"},
        422: {"description": "A table is keyless, known already, or the source is files"},
    },
)
def add_tables(
    name: str, platform: PlatformDep, _: AdminDep, body: AddedTables = Body(...)
) -> dict[str, Any]:
    """Add tables; PostgreSQL copies only them on the next sync, the others stream on."""
    from kirana.replication.checks import check_tables
    from kirana.replication.service import source_status
    from kirana.replication.specs import parse_source_config
    from kirana.replication.state import SourceNotFound

    state = _state(platform)
    tables = [t.model_dump() for t in body.tables]
    try:
        current = state.get(name).model_dump()
        if current["kind"] != "files":  # refuse a keyless table before saving
            check_tables(parse_source_config({**current, "tables": current["tables"] + tables}))
        state.add_tables(name, tables)
    except SourceNotFound as exc:
        raise _not_found(exc) from exc
    except ValueError as exc:
        raise HTTPException(422, detail={"code": "table_refused", "message": str(exc)}) from exc
    return source_status(state, platform.settings.lake_dir, name)


@router.delete(
    "/replication/sources/{name}",
    status_code=204,
    responses={
        409: {"description": "The source is syncing now (`busy`)"},
        502: {"description": "The slot could not be dropped (`source_unreachable`)"},
    },
)
def remove_source(
    name: str,
    platform: PlatformDep,
    _: AdminDep,
    drop_slot: bool = Query(True, description="PostgreSQL: drop the slot and publication too."),
) -> None:
    """Forget a source (its lake tables stay)."""
    from kirana.replication.service import SourceUnreachable
    from kirana.replication.service import remove_source as remove
    from kirana.replication.state import SourceBusy, SourceNotFound

    try:
        remove(_state(platform), name, drop_slot=drop_slot)
    except SourceNotFound as exc:
        raise _not_found(exc) from exc
    except SourceBusy as exc:
        raise HTTPException(409, detail={"code": "busy", "message": str(exc)}) from exc
    except SourceUnreachable as exc:
        detail = {"code": "source_unreachable", "message": str(exc)}
        raise HTTPException(502, detail=detail) from exc


@router.post(
    "/replication/sources/{name}/sync",
    responses={
        409: {"description": "The source is syncing now (`busy`)"},
        502: {"description": "The source database or folder failed (`sync_failed`)"},
    },
)
async def sync_source(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """Catch the source up now (snapshot on the first run) and say what was applied."""
    from kirana.replication.state import SourceBusy, SourceNotFound
    from kirana.replication.sync import Replicator

    state = _state(platform)
    try:
        config = state.get(name)
    except SourceNotFound as exc:
        raise _not_found(exc) from exc
    replicator = Replicator(config, platform.settings.lake_dir, state)
    try:
        report = await run_in_threadpool(replicator.run, max_seconds=60, lock_wait_seconds=30)
    except SourceBusy as exc:
        raise HTTPException(409, detail={"code": "busy", "message": str(exc)}) from exc
    except Exception as exc:
        raise HTTPException(
            502,
            detail={
                "code": "sync_failed",
                "message": scrub(
                    f"{type(exc).__name__}: {exc}; the next sync resumes where it stopped",
                    secret_values(config),
                ),
            },
        ) from exc
    return {
        "source": name,
        "snapshot_rows": report.snapshot_rows,
        "rows": report.rows,
        "transactions": report.transactions,
        "tables": report.tables,
        "seconds": round(report.seconds, 3),
    }


@router.get("/replication/sources/{name}/tables/{table}/changes")
def table_changes(
    platform: PlatformDep,
    _: AdminDep,
    # both name a folder under lake/replicated/: `..` or a separator would leave it
    name: str = PathParameter(pattern=NAME_PATTERN),
    table: str = PathParameter(pattern=r"^[^./\\]{1,255}$", description="Its lake name"),
    since: int = Query(-1, ge=-1, le=2**63 - 1, description="Delta version already seen."),
    limit: int = Query(10_000, ge=1, le=100_000),
) -> dict[str, Any]:
    """Rows changed after Delta version `since`, oldest commit first (the change data feed)."""
    from kirana.replication.lake import changes_since, table_path

    path = table_path(platform.settings.lake_dir, name, table)
    if not (path / "_delta_log").is_dir():
        raise _not_found(LookupError(f"no lake table {table!r} for source {name!r}"))
    changes = changes_since(path, since)
    rows = changes.slice(0, limit).to_pylist()
    last = max((r["_commit_version"] for r in rows), default=since)
    return {
        "rows": rows,
        "next_since": last,
        "more": changes.num_rows > limit,
    }


class ExportRequest(BaseModel):
    """Which lake tables to copy into which PostgreSQL schema."""

    dsn: str = ""
    """libpq DSN; empty: the configured `warehouse.dsn`."""
    schema_name: str = ""
    tables: list[str] = Field(default_factory=list)
    """SQL names of lake tables; empty: the configured list, or every table."""
    keys: dict[str, list[str]] = Field(default_factory=dict)
    full: bool = False


@router.post("/warehouse/export", tags=["warehouse"])
async def warehouse_export(
    platform: PlatformDep, _: AdminDep, request: ExportRequest = Body(...)
) -> dict[str, Any]:
    """Export lake tables into PostgreSQL, only what changed since the last export."""
    from kirana.lake.catalog import lake_tables
    from kirana.warehouse.export import ExportError, export_tables

    settings = platform.settings
    dsn = request.dsn or settings.warehouse.dsn
    if not dsn:
        raise HTTPException(
            422, detail={"code": "invalid_field", "message": "`dsn`: no warehouse configured"}
        )
    tables = request.tables or settings.warehouse.tables or list(lake_tables(settings.lake_dir))
    try:
        return await run_in_threadpool(
            export_tables,
            settings.lake_dir,
            dsn,
            request.schema_name or settings.warehouse.schema_name,
            tables,
            keys={**settings.warehouse.keys, **request.keys},
            full=request.full,
        )
    except ExportError as exc:
        message = scrub(str(exc), secrets_in(dsn))  # a driver's error may echo the DSN
        raise HTTPException(422, detail={"code": "export_failed", "message": message}) from exc
