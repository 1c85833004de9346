"""What a sync is: a source, a key, a destination, a field mapping, a mode, a schedule."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kirana.destinations.config import NAME_PATTERN, ConfigError

Mode = Literal["upsert", "mirror", "insert"]


class SyncSource(BaseModel):
    """Exactly one of: a SQL query over the lake, or an audience's members."""

    model_config = ConfigDict(extra="forbid")

    sql: str | None = None
    """A DuckDB query over lake tables by name (``SELECT user_id, score FROM churn_scores``)."""
    audience: str | None = None
    """Members of this audience: columns profile_id, user_id, anonymous_id, email."""

    @model_validator(mode="after")
    def _exactly_one(self) -> SyncSource:
        if (self.sql is None) == (self.audience is None):
            raise ValueError("give exactly one of `sql` or `audience`")
        if self.sql is not None and not self.sql.strip():
            raise ValueError("`sql` must not be empty")
        return self


class SyncConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    source: SyncSource
    key: str = Field(min_length=1)
    """Column that identifies a row (unique, not null); records for one key stay in order."""
    destination: str = Field(pattern=NAME_PATTERN)
    mapping: dict[str, str] = {}
    """Output field -> source column; empty: every column under its own name."""
    mode: Mode = "upsert"
    """``upsert``: new and changed rows; ``mirror``: also delete rows that left the source;
    ``insert``: only keys never sent before."""
    schedule_seconds: float = Field(0, ge=0)
    """Run every this many seconds inside ``kirana serve`` (0: only on demand)."""


def parse_sync(raw: dict) -> SyncConfig:
    try:
        return SyncConfig.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"])
            parts.append(f"`{where}`: {err['msg']}" if where else err["msg"])
        raise ConfigError("; ".join(parts)) from exc
