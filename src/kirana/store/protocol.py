"""Interfaces and value types of the operational store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")


class NotFound(LookupError):
    """The named object does not exist."""


class AlreadyExists(ValueError):
    """An object with that name already exists."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where events come from; its write key only ever ingests."""

    id: str
    name: str
    write_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Token:
    """An access token for the management APIs (stored as a hash, shown once)."""

    id: str
    name: str
    role: Role
    created_at: datetime


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

    def create_source(self, name: str) -> Source: ...
    def list_sources(self) -> list[Source]: ...
    def source_by_write_key(self, write_key: str) -> Source | None: ...
    def source_by_name(self, name: str) -> Source: ...

    def create_token(self, name: str, role: Role) -> tuple[Token, str]: ...
    def token_by_secret(self, secret: str) -> Token | None: ...
    def list_tokens(self) -> list[Token]: ...

    def add_quarantined(self, entries: Sequence[QuarantinedEvent]) -> None: ...
    def list_quarantined(
        self, *, source_id: str | None = None, after_offset: int = -1, limit: int = 100
    ) -> list[QuarantinedEvent]: ...

    def delete_quarantined_containing(self, values: Sequence[str]) -> int: ...

    def get_position(self, consumer: str) -> int | None: ...
    def set_position(self, consumer: str, offset: int) -> None: ...

    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...
