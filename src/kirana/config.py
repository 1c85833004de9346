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

    backend: Literal["file", "nats"] = "file"
    """Which event-log backend: ``file`` (embedded segment files) or ``nats`` (JetStream)."""
    segment_mb: int = Field(128, ge=1)
    """Roll to a new segment file after this many MiB."""
    max_pending_mb: int = Field(64, ge=1)
    """Answer 429 when this many MiB wait to be made durable."""
    retention_hours: float = Field(168, ge=0)
    """Keep consumed segments this long (for replays) before deleting them."""
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server(s) when ``backend = "nats"`` (comma-separated for a cluster; NATS 2.11+)."""
    nats_stream: str = Field("KIRANA_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")
    """JetStream stream holding the log (redacted copies go to ``<stream>_REDACTED``)."""
    nats_subject: str = Field("kirana.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    """Subject the stream captures; nothing else may publish to it."""
    nats_replicas: int = Field(1, ge=1, le=5)
    """Copies JetStream keeps of each message (3 on a 3-node cluster); acks wait for a quorum."""
    nats_max_bytes_mb: int = Field(0, ge=0)
    """Cap on the stream's size (0: none); when full, appends answer 429, nothing is dropped."""
    nats_ack_timeout_seconds: float = Field(2.0, gt=0, le=60)
    """Wait this long for JetStream's publish ack before retrying with the same message id."""
    nats_duplicate_window_seconds: float = Field(120, gt=0)
    """JetStream drops a re-published message id within this window (covers ack retries)."""


class LakeSettings(BaseModel):
    """The lake loader."""

    linger_seconds: float = Field(1.0, gt=0, le=60)
    """Gather events this long before each Delta commit (bounds lake latency)."""
    max_batch_events: int = Field(25_000, ge=1)
    """At most this many events per Delta commit (bounds the memory of a catching-up loader)."""
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


class ExperimentSettings(BaseModel):
    """Experiment reports (docs/experiments.md)."""

    analysis_memory_mb: int = Field(4096, ge=64)
    """DuckDB memory cap for report queries; beyond it they spill to ``<state>/duckdb-tmp``."""
    report_every_minutes: float = Field(60, ge=0)
    """Re-analyse running experiments this often inside ``kirana serve`` (0: only on request);
    the API serves the latest stored report, so a large experiment never blocks a request."""


class AutomationSettings(BaseModel):
    """Content ranking, feedback and the personalise API (docs/automation.md)."""

    half_life_hours: float = Field(168, gt=0)
    """Feedback counts halve in weight every this many hours (tune to traffic)."""
    burn_in: int = Field(10, ge=0)
    """New content is shown at random until it has this many impressions per audience."""
    evict_below_ctr: float = Field(0.005, gt=0, lt=1)
    """Evict content confidently below this click-through rate ..."""
    evict_confidence: float = Field(0.05, gt=0, lt=1)
    """... when P(CTR above it) falls below this ..."""
    evict_min_impressions: float = Field(200, ge=0)
    """... after at least this many (decayed) impressions."""
    learning_audiences: list[str] = []
    """Audiences whose CTRs are learnt apart, in priority order (a user's first one wins).

    Empty: every audience, alphabetically."""
    affinity_traits: dict[str, str] = {
        "favourite_department": "department",
        "favourite_aisle": "aisle",
    }
    """Computed trait -> content tag prefix; a trait value ``produce`` matches tag
    ``department:produce`` on widgets and items."""
    profile_cache_seconds: float = Field(5, ge=0)
    """Cache a resolved profile this long in the personalise API."""
    refresh_seconds: float = Field(0.5, gt=0, le=60)
    """The API reloads content and statistics changes this often."""
    decision_flush_seconds: float = Field(1.0, gt=0, le=60)
    """Append logged decisions to the ``decisions`` table this often."""
    decision_spool_max_mb: int = Field(1024, ge=1)
    """Drop new decisions (counted in ``/v1/status``) while the API processes' spooled,
    not yet appended batches hold this much: the appends have stopped."""


class ReplicationSettings(BaseModel):
    """Source replication inside ``kirana serve`` (docs/replication.md)."""

    run_in_serve: bool = True
    """Keep every replication source up to date while ``kirana serve`` runs."""
    every_seconds: float = Field(2.0, gt=0)
    """Start a catch-up round this often (lag is about this plus the apply time)."""
    max_seconds_per_source: float = Field(30.0, gt=0)
    """Move on to the next source after this long in one round."""


class WarehouseSettings(BaseModel):
    """Incremental export of lake tables into a PostgreSQL schema (docs/replication.md)."""

    dsn: str = ""
    """libpq DSN of the warehouse; empty: no scheduled export."""
    schema_name: str = "kirana"
    """Schema that receives the tables."""
    tables: list[str] = []
    """Lake tables to export, by their `kirana sql` names."""
    keys: dict[str, list[str]] = {}
    """Key columns for tables whose key Kirana does not know (e.g. ``events``: message_id)."""
    every_minutes: float = Field(0, ge=0)
    """Export this often inside ``kirana serve`` (0: only on ``kirana warehouse export``)."""


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
    duckdb_memory_limit: str | None = Field(
        None, pattern=r"^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|[kmgt]i?b|bytes)$"
    )
    """Embedded engine: DuckDB's memory limit while reading orders (e.g. ``8GB``); unset: an
    eighth of the RAM, at least 1 GB. Past it DuckDB spills to ``duckdb_temp_dir``."""
    duckdb_temp_dir: Path | None = None
    """Embedded engine: where DuckDB spills (a disk with room for about the order lines);
    unset: the system's temp dir. Each read uses a fresh directory under it, removed after."""
    spark_master: str = "local[2]"
    """Spark master URL when ``engine = "spark"`` (e.g. ``spark://host:7077``)."""
    spark_driver_memory: str | None = Field(None, pattern=r"^[0-9]+([kmgtpKMGTP][bB]?)?$")
    """``spark.driver.memory`` (e.g. ``8g``); unset: 2g in local mode. Applies when the
    driver's JVM starts, i.e. to the first Spark job of a process."""
    spark_shuffle_partitions: int | None = Field(None, ge=1)
    """``spark.sql.shuffle.partitions``; unset: 4 (suits local mode; raise on a cluster)."""
    spark_conf: dict[str, str | int | float | bool] = {}
    """Any other Spark settings, e.g. ``{"spark.executor.memory" = "8g"}``; these win over
    the two fields above and over Kirana's local defaults."""
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
    api_processes: int = Field(1, ge=1, le=64)
    """How many processes ``kirana serve`` answers HTTP with, all on the same port.

    One Python process decides about 700 personalise requests a second (one core); each
    extra process adds about as many on another core. The first process owns the event log
    and the consumer worker; the others answer ``GET /v1/personalize`` and ``/health``
    themselves and relay every other request to the first over a Unix socket, so tracking
    gains nothing from more. Set it to the number of cores left after the consumer worker
    when personalise traffic dominates (docs/configuration.md)."""
    worker_nice: int = Field(5, ge=0, le=19)
    """Scheduling niceness of the consumer worker: when both compete for the CPU, the API
    (acknowledging events) goes first and the consumers catch up from the durable log."""
    log: LogSettings = LogSettings()
    lake: LakeSettings = LakeSettings()
    profiles: ProfileSettings = ProfileSettings()
    segments: SegmentSettings = SegmentSettings()
    experiments: ExperimentSettings = ExperimentSettings()
    automation: AutomationSettings = AutomationSettings()
    models: ModelSettings = ModelSettings()
    replication: ReplicationSettings = ReplicationSettings()
    warehouse: WarehouseSettings = WarehouseSettings()

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
