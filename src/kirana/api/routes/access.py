"""Access management API: sources and their write keys, access tokens, the audit log.

Admin tokens only. A credential (write key, token) is in the response that creates or
rotates it and nowhere else: lists show ids, names and the first characters of keys.
Every change here is written to the audit log by :mod:`kirana.audit.middleware`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from kirana.api.deps import AdminDep, PlatformDep
from kirana.store.protocol import AlreadyExists, NotFound, Role, Source, Token

router = APIRouter(prefix="/v1", tags=["access"])

DEFAULT_OVERLAP_SECONDS = 24 * 3600


class SourceCreate(BaseModel):
    name: str


class WriteKeyPublic(BaseModel):
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    expires_at: datetime | None = Field(
        description="When a rotated-out key stops working; null for the current key"
    )


class SourcePublic(BaseModel):
    id: str
    name: str
    created_at: datetime
    enabled: bool
    disabled_at: datetime | None
    write_keys: list[WriteKeyPublic]


class SourceWithKey(SourcePublic):
    write_key: str = Field(description="The new write key: shown in this response only")


class RotateKey(BaseModel):
    overlap_seconds: int = Field(
        DEFAULT_OVERLAP_SECONDS,
        ge=0,
        le=30 * 24 * 3600,
        description="How long the source's previous keys keep working (default a day)",
    )


class TokenCreate(BaseModel):
    name: str = Field(min_length=1)
    role: Role = "viewer"


class TokenPublic(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class TokenWithSecret(TokenPublic):
    token: str = Field(description="The secret: shown in this response only")


class AuditPublic(BaseModel):
    seq: int
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    target: str
    summary: dict[str, Any]
    status: int


def _source(source: Source, **extra: Any) -> dict[str, Any]:
    keys = [
        WriteKeyPublic(prefix=k.prefix, created_at=k.created_at, expires_at=k.expires_at)
        for k in source.keys
    ]
    return {
        "id": source.id,
        "name": source.name,
        "created_at": source.created_at,
        "enabled": source.enabled,
        "disabled_at": source.disabled_at,
        "write_keys": keys,
        **extra,
    }


def _token(token: Token) -> TokenPublic:
    return TokenPublic.model_validate(token, from_attributes=True)


def _not_found(exc: NotFound) -> HTTPException:
    return HTTPException(404, detail={"code": "not_found", "message": str(exc)})


@router.get("/sources", response_model=list[SourcePublic])
def list_sources(platform: PlatformDep, _: AdminDep) -> list[dict[str, Any]]:
    """Event sources with the first characters of their working write keys."""
    return [_source(s) for s in platform.store.list_sources()]


@router.post(
    "/sources",
    response_model=SourceWithKey,
    status_code=201,
    responses={409: {"description": "A source of that name exists (`already_exists`)"}},
)
def create_source(body: SourceCreate, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """Create a source; its write key is in this response and never shown again."""
    try:
        source, key = platform.store.create_source(body.name)
    except AlreadyExists as exc:
        raise HTTPException(409, detail={"code": "already_exists", "message": str(exc)}) from exc
    except ValueError as exc:
        raise HTTPException(
            422, detail={"code": "invalid_field", "message": f"`name`: {exc}"}
        ) from exc
    return _source(source, write_key=key)


@router.get("/sources/{name}", response_model=SourcePublic)
def show_source(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    try:
        return _source(platform.store.source_by_name(name))
    except NotFound as exc:
        raise _not_found(exc) from exc


@router.post("/sources/{name}/rotate-key", response_model=SourceWithKey)
def rotate_key(
    name: str, platform: PlatformDep, _: AdminDep, body: RotateKey | None = None
) -> dict[str, Any]:
    """A new write key (in this response only); the previous keys keep working for
    `overlap_seconds`, then stop."""
    overlap = timedelta(seconds=(body or RotateKey()).overlap_seconds)
    try:
        source, key = platform.store.rotate_write_key(name, overlap)
    except NotFound as exc:
        raise _not_found(exc) from exc
    return _source(source, write_key=key)


@router.post("/sources/{name}/disable", response_model=SourcePublic)
def disable_source(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    """Refuse the source's events (403 `source_disabled`, nothing stored) until enabled."""
    try:
        return _source(platform.store.set_source_enabled(name, False))
    except NotFound as exc:
        raise _not_found(exc) from exc


@router.post("/sources/{name}/enable", response_model=SourcePublic)
def enable_source(name: str, platform: PlatformDep, _: AdminDep) -> dict[str, Any]:
    try:
        return _source(platform.store.set_source_enabled(name, True))
    except NotFound as exc:
        raise _not_found(exc) from exc


@router.delete("/sources/{name}", status_code=204)
def delete_source(name: str, platform: PlatformDep, _: AdminDep) -> None:
    """Delete the source: its write keys stop working at once. Events it sent stay in
    the log, the lake and the quarantine (with its id as `sourceId`)."""
    try:
        platform.store.delete_source(name)
    except NotFound as exc:
        raise _not_found(exc) from exc


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(platform: PlatformDep, _: AdminDep) -> list[TokenPublic]:
    """Access tokens by id, name and role (secrets are stored only as hashes)."""
    return [_token(t) for t in platform.store.list_tokens()]


@router.post("/tokens", response_model=TokenWithSecret, status_code=201)
def create_token(body: TokenCreate, platform: PlatformDep, _: AdminDep) -> TokenWithSecret:
    """Create a token; its secret is in this response and never shown again."""
    try:
        token, secret = platform.store.create_token(body.name, body.role)
    except ValueError as exc:
        raise HTTPException(422, detail={"code": "invalid_field", "message": str(exc)}) from exc
    return TokenWithSecret(**_token(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenPublic)
def revoke_token(token_id: str, platform: PlatformDep, _: AdminDep) -> TokenPublic:
    """Revoke a token: from the next request on it gets 401 everywhere."""
    try:
        return _token(platform.store.revoke_token(token_id))
    except NotFound as exc:
        raise _not_found(exc) from exc


@router.get("/audit", response_model=list[AuditPublic])
def list_audit(
    platform: PlatformDep,
    _: AdminDep,
    before: int | None = Query(
        None, ge=0, le=2**63 - 1, description="Entries older than this `seq` (paging)"
    ),
    limit: int = Query(100, ge=1, le=1000),
    actor: str | None = Query(None, description="A token id or name"),
    action: str | None = Query(None, description="Prefix, e.g. `DELETE` or `POST /v1/sources`"),
    target: str | None = Query(None, description="The changed object, e.g. a source name"),
    since: datetime | None = Query(None, description="Entries at or after this time"),
) -> list[AuditPublic]:
    """Management changes, newest first: who (token), what (action, target, a summary
    without secrets), when (UTC), and the status the request got."""
    entries = platform.store.list_audit(
        before=before, limit=limit, actor=actor, action=action, target=target, since=since
    )
    return [AuditPublic.model_validate(e, from_attributes=True) for e in entries]
