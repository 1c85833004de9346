"""Interfaces and value types of the operational store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")


class NotFound(LookupError):
    """The named object does not exist."""


class AlreadyExists(ValueError):
    """An object with that name already exists."""


@dataclass(frozen=True, slots=True)
class WriteKeyInfo:
    """What may be shown of a write key: its first characters and its lifetime. The key
    itself is stored only as a hash and shown once, when created or rotated."""

    prefix: str
    created_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where events come from; its write keys only ever ingest. A disabled source keeps
    its keys, but the collector refuses their events (403) until it is enabled again."""

    id: str
    name: str
    created_at: datetime
    disabled_at: datetime | None = None
    keys: tuple[WriteKeyInfo, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Token:
    """An access token for the management APIs (stored as a hash, shown once). A revoked
    token is kept (the audit log names it) but authenticates nothing."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One management change: who (token id and name), what (action on target, with a
    summary that never holds a secret), when (UTC), and the HTTP status it got."""

    seq: int
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    target: str
    summary: dict[str, Any]
    status: int


@dataclass(frozen=True, slots=True)
class QuarantinedEvent:
    """A rejected event, kept whole with why it was rejected."""

    log_offset: int
    source_id: str
    received_at: datetime
    batch_index: int | None
    message_id: str | None
    code: str
    reason: str
    raw: str


class OperationalStore(Protocol):
    """Small, transactional state that the platform's services share."""

    def create_source(self, name: str) -> tuple[Source, str]: ...
    def list_sources(self) -> list[Source]: ...
    def source_by_write_key(self, write_key: str) -> Source | None: ...
    def source_by_name(self, name: str) -> Source: ...
    def rotate_write_key(self, name: str, overlap: timedelta) -> tuple[Source, str]: ...
    def set_source_enabled(self, name: str, enabled: bool) -> Source: ...
    def delete_source(self, name: str) -> Source: ...

    def create_token(self, name: str, role: Role) -> tuple[Token, str]: ...
    def token_by_secret(self, secret: str) -> Token | None: ...
    def token_by_id(self, token_id: str) -> Token | None: ...
    def list_tokens(self) -> list[Token]: ...
    def revoke_token(self, token_id: str) -> Token: ...

    def record_audit(
        self,
        *,
        actor_id: str,
        actor_name: str,
        action: str,
        target: str,
        summary: dict[str, Any],
        status: int,
    ) -> AuditEntry: ...
    def list_audit(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]: ...

    def add_quarantined(self, entries: Sequence[QuarantinedEvent]) -> None: ...
    def list_quarantined(
        self, *, source_id: str | None = None, after_offset: int = -1, limit: int = 100
    ) -> list[QuarantinedEvent]: ...

    def delete_quarantined_containing(
        self, values: Sequence[str], owned: Callable[[str], bool] | None = None
    ) -> int: ...

    def get_position(self, consumer: str) -> int | None: ...
    def set_position(self, consumer: str, offset: int) -> None: ...

    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
