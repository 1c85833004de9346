"""Destination configuration: typed, validated, stored as JSON in the delivery store.

Each backend has its own settings model (``KIND_SETTINGS``); the common part
(batching, retries, rate limit, routes) is :class:`DestinationConfig`. Bad
input raises :class:`ConfigError` naming the field and the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kirana.destinations.secrets import masked_settings

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "contains"]


class ConfigError(ValueError):
    """A configuration was refused; the message names the field and the rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Strict):
    """One filter: ``field`` (a dotted path into the event) compared with ``value``."""

    field: str = Field(min_length=1)
    op: Op = "eq"
    value: Any = None


class Route(_Strict):
    """Which records of a stream go to the destination, and how they are reshaped."""

    stream: Literal["events", "audiences"] = "events"
    """``events``: every event in the log; ``audiences``: Audience Entered/Exited only."""
    events: list[str] = []
    """Event names to take (track events); empty: all."""
    types: list[str] = []
    """Segment types to take (track, identify, page, …); empty: all."""
    audiences: list[str] = []
    """For ``stream = audiences``: which audiences; empty: all."""
    where: list[Condition] = []
    """Every condition must hold."""
    mapping: dict[str, str | dict[str, Any]] = {}
    """Output field -> dotted path in the event, or ``{"const": value}``; empty: the whole event."""
    key: str | None = None
    """Path of the entity key (default: userId, else anonymousId)."""


class WebhookSettings(_Strict):
    url: str = Field(pattern=r"^https?://")
    """Where JSON batches are POSTed."""
    secret: str = Field(min_length=16)
    """Shared secret for the ``X-Kirana-Signature`` HMAC-SHA256."""
    timeout_seconds: float = Field(10, gt=0, le=300)
    headers: dict[str, str] = {}


class SegmentForwardSettings(_Strict):
    url: str = Field(pattern=r"^https?://")
    """Base URL of a Segment-compatible tracking API (``/v1/batch`` is appended)."""
    write_key: str = Field(min_length=1)
    timeout_seconds: float = Field(10, gt=0, le=300)


class PostgresSettings(_Strict):
    dsn: str = Field(min_length=1)
    """libpq connection string, e.g. ``host=127.0.0.1 user=postgres dbname=app``."""
    schema_name: str = Field("public", alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    key_column: str = Field("key", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    create_table: bool = True
    """Create the table and add new columns as fields appear."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RedisSettings(_Strict):
    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    key_prefix: str = "kirana:"
    """Hashes are ``<prefix><collection>:<key>``; sets are ``<prefix><collection>``."""


class FileDropSettings(_Strict):
    directory: Path
    format: Literal["csv", "parquet"] = "csv"
    prefix: str = Field("kirana", pattern=r"^[A-Za-z0-9_.-]+$")
    rotate_bytes: int = Field(64 * 1024 * 1024, ge=1)
    rotate_seconds: float = Field(300, gt=0)


class EmailSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to_field: str = "email"
    """Record field holding the recipient's address."""
    subject: str = Field(min_length=1)
    """Template: ``$field`` / ``${field}`` are replaced from the record."""
    body: str = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = Field(10, gt=0, le=300)


class ProfilesSettings(_Strict):
    identifier: Literal["user_id", "anonymous_id"] = "user_id"
    """Which identifier the record key is."""


KIND_SETTINGS: dict[str, type[BaseModel]] = {
    "webhook": WebhookSettings,
    "segment": SegmentForwardSettings,
    "postgres": PostgresSettings,
    "redis": RedisSettings,
    "file": FileDropSettings,
    "email": EmailSettings,
    "profiles": ProfilesSettings,
}
RESERVED_NAMES = frozenset({"status"})


class DestinationConfig(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["webhook", "segment", "postgres", "redis", "file", "email", "profiles"]
    settings: dict[str, Any] = {}
    routes: list[Route] = []
    batch_size: int = Field(100, ge=1, le=10_000)
    max_attempts: int = Field(20, ge=1, le=1000)
    """Attempts (not counting throttling) before a record is dead-lettered."""
    backoff_seconds: float = Field(1.0, gt=0, le=3600)
    """First retry delay; doubles per attempt (with jitter) up to ``backoff_max_seconds``."""
    backoff_max_seconds: float = Field(300.0, gt=0, le=86_400)
    rate_limit: float = Field(0, ge=0)
    """Records per second at most (0: unlimited)."""
    burst: int = Field(0, ge=0)
    """Token-bucket size (0: one batch)."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved (it is an API path); choose another name")
        return value

    def typed_settings(self) -> Any:
        return KIND_SETTINGS[self.kind].model_validate(self.settings)


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"`{prefix}{where}`: {err['msg']}")
    return "; ".join(parts)


def parse_destination(raw: dict[str, Any]) -> DestinationConfig:
    """Validate a destination definition (common part and the kind's settings)."""
    try:
        config = DestinationConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    try:
        typed = config.typed_settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "settings.")) from exc
    config.settings = typed.model_dump(mode="json", by_alias=True)
    return config


def redacted(config: DestinationConfig) -> dict[str, Any]:
    """The config as JSON with every credential shown as ``"***"`` (listings, the API, the CLI).

    Which settings are credentials, and how a replace keeps them: ``destinations/secrets.py``.
    """
    out = config.model_dump(mode="json")
    out["settings"] = masked_settings(out["settings"])
    return out
