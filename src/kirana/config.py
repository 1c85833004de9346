"""Typed configuration with one source of truth.

Precedence: explicit arguments (CLI flags) > ``KIRANA_*`` environment
variables > ``<data-dir>/kirana.toml`` (or ``KIRANA_CONFIG``) > defaults that
work on a laptop. Nested sections use ``__`` in environment variables, e.g.
``KIRANA_LAKE__LINGER_SECONDS=2``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("kirana-data")


class LogSettings(BaseModel):
    """The event log."""

    backend: Literal["file"] = "file"
    """Which event-log backend: ``file`` (embedded segment files)."""
    segment_mb: int = Field(128, ge=1)
    """Roll to a new segment file after this many MiB."""
    max_pending_mb: int = Field(64, ge=1)
    """Answer 429 when this many MiB wait to be made durable."""
    retention_hours: float = Field(168, ge=0)
    """Keep consumed segments this long (for replays) before deleting them."""


class LakeSettings(BaseModel):
    """The lake loader."""

    linger_seconds: float = Field(1.0, gt=0, le=60)
    """Gather events this long before each Delta commit (bounds lake latency)."""
    max_batch_events: int = Field(100_000, ge=1)
    """At most this many events per Delta commit."""
    compact_every_commits: int = Field(50, ge=1)
    """Compact small files after this many commits (and whenever idle)."""
    dedupe_days: int = Field(30, ge=1)
    """Remember messageIds this long for deduplication."""
    vacuum_retention_hours: int = Field(168, ge=0)
    """Delete files replaced by compaction once they are this old."""


class ProfileSettings(BaseModel):
    """The profile store and identity resolution."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    """Where identities and traits live: ``sqlite`` (embedded) or ``postgres``."""
    postgres_dsn: str = "host=127.0.0.1 port=5432 user=postgres dbname=kirana"
    """libpq connection string when ``backend = "postgres"``."""
    postgres_schema: str = "kirana"
    """Schema that holds Kirana's profile tables in PostgreSQL."""
    user_id_limit: int = Field(1, ge=1)
    """How many user ids one profile may hold (merge protection)."""


class SegmentSettings(BaseModel):
    """Computed traits and audiences."""

    refresh_minutes: float = Field(15, ge=0)
    """Refresh computed traits and audiences this often inside ``kirana serve`` (0: never)."""


class JobSchedule(BaseModel):
    """How often each model job runs inside ``kirana serve``, in minutes (0: never)."""

    buy_again: float = Field(1440, ge=0)
    recommended_for_you: float = Field(1440, ge=0)
    frequently_bought_together: float = Field(1440, ge=0)
    popular: float = Field(1440, ge=0)
    buying_patterns: float = Field(1440, ge=0)


class ModelSettings(BaseModel):
    """Model jobs: recommendations and buying patterns over the lake (docs/models.md)."""

    engine: Literal["embedded", "spark"] = "embedded"
    """Where jobs compute: ``embedded`` (DuckDB + numpy in-process) or ``spark``."""
    k: int = Field(20, ge=1, le=500)
    """Items kept per user (and per item for frequently bought together)."""
    recommender: Literal["ease", "als"] = "ease"
    """Collaborative filter behind "recommended for you"."""
    ease_max_items: int = Field(5000, ge=10)
    """EASE models only the most bought items (memory grows with the square)."""
    min_support: float = Field(0.0, ge=0, le=1)
    """Frequently bought together: least share of orders holding the pair."""
    min_confidence: float = Field(0.0, ge=0, le=1)
    """Frequently bought together: least P(related item | item)."""
    min_pair_orders: int = Field(5, ge=1)
    """Frequently bought together: least number of orders holding the pair."""
    horizon_days: int = Field(30, ge=1, le=3650)
    """Buying patterns: predict orders over this many days."""
    extra_order_tables: list[str] = []
    """Lake tables of order lines to add to the events' orders (e.g. replicated from a
    shop database): columns user_id, order_id, order_time, product_id[, amount]."""
    evaluate: bool = True
    """Also score each recommender on a last-order holdout (refits it once more)."""
    output_retention_days: float = Field(30, ge=0)
    """Keep replaced output versions this long, so runs can be rolled back to them."""
    spark_master: str = "local[2]"
    """Spark master URL when ``engine = "spark"`` (e.g. ``spark://host:7077``)."""
    schedule: JobSchedule = JobSchedule()


class Settings(BaseSettings):
    """Everything a Kirana process needs to know."""

    model_config = SettingsConfigDict(env_prefix="KIRANA_", env_nested_delimiter="__")

    data_dir: Path = DEFAULT_DATA_DIR
    """Where the log, the lake and the operational store live."""
    host: str = "127.0.0.1"
    port: int = 8000
    gil_switch_ms: float = Field(5.0, gt=0, le=100)
    """How long a consumer thread may hold the GIL before the event loop gets it back.

    Python's default is 5 ms. Busy consumer threads can hold acknowledgements
    back by up to this much per switch; a shorter interval is a knob for tail
    latency, not yet shown to help on the benchmark (docs/benchmarks.md)."""
    worker_process: bool = True
    """``kirana serve`` runs the consumers in a worker process beside the API.

    Off: consumers run as threads of the API process (slower ingest, one process)."""
    log: LogSettings = LogSettings()
    lake: LakeSettings = LakeSettings()
    profiles: ProfileSettings = ProfileSettings()
    segments: SegmentSettings = SegmentSettings()
    models: ModelSettings = ModelSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_path(init_settings)
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def store_path(self) -> Path:
        return self.state_dir / "kirana.sqlite"


def _toml_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    explicit = os.environ.get("KIRANA_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = init_settings().get("data_dir") or os.environ.get("KIRANA_DATA_DIR")
    candidate = Path(data_dir or DEFAULT_DATA_DIR) / "kirana.toml"
    return candidate if candidate.is_file() else None


def load_settings(data_dir: Path | None = None, **overrides: object) -> Settings:
    """Settings for ``data_dir`` (None: from the environment or the default)."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
