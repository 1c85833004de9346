"""The engine role: where a model job's heavy lifting runs.

Two engines implement it: the embedded one (DuckDB, numpy/scipy, ``implicit``)
and Spark (``pyspark``, MLlib ALS and FPGrowth). Both read the same lake files
and return Arrow tables of the same shape, so the job runner, the run registry,
the versioned outputs and publishing to serving are shared and engine-blind.

An engine module exposes ``create(settings: ModelSettings) -> ModelEngine``;
``kirana.models.jobs.engines.open_engine`` picks the module by name. An engine
may report metrics of a job (holdout recall, fitted parameters, row counts) by
attaching them to the returned table with `with_metrics`; the runner stores
them in the run registry (`metrics_of`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

#: Output shapes every engine returns (column name -> Arrow type).
PER_USER_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("score", pa.float64()),
        ("rank", pa.int32()),
    ]
)
ASSOCIATIONS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("related_item_id", pa.string()),
        ("support", pa.float64()),
        ("confidence", pa.float64()),
        ("lift", pa.float64()),
        ("rank", pa.int32()),
    ]
)
#: Per customer (``user_id`` as in the lake: user id, else anonymous id): BG/NBD and
#: Gamma-Gamma predictions at the last order date in the data.
BUYING_PATTERNS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("orders", pa.int64()),  # distinct order days seen
        ("last_order_date", pa.date32()),
        ("p_alive", pa.float64()),
        ("expected_orders", pa.float64()),  # in the next `horizon_days`
        ("p_order", pa.float64()),  # P(at least one order in the next `horizon_days`)
        ("expected_spend", pa.float64()),  # per order (Gamma-Gamma); null when not fitted
        ("expected_next_order_date", pa.date32()),
    ]
)
#: The key that per-user tables use for a list that is the same for everyone.
EVERYONE = "*"

_METRICS_KEY = b"kirana.metrics"


def with_metrics(table: pa.Table, metrics: dict[str, Any]) -> pa.Table:
    """``table`` carrying ``metrics`` (JSON-ready) in its schema metadata, for the run registry."""
    meta = dict(table.schema.metadata or {})
    meta[_METRICS_KEY] = json.dumps(metrics, default=float).encode()
    return table.replace_schema_metadata(meta)


def metrics_of(table: pa.Table) -> dict[str, Any]:
    """Metrics an engine attached with `with_metrics` (empty when none)."""
    raw = (table.schema.metadata or {}).get(_METRICS_KEY)
    return json.loads(raw) if raw else {}


@dataclass(frozen=True)
class OrdersSource:
    """Where a job's orders come from: the lake's ``Order Completed`` events.

    Engines read the Delta table's current files themselves (DuckDB through
    ``kirana.lake.catalog``, Spark through the snapshot's Parquet files), so
    nothing is funnelled through the driver's memory on the Spark path.
    """

    lake_dir: Path
    table: str = "events"
    #: the Delta version read (filled in by the runner for the run registry)
    version: int | None = None
    #: extra lake tables of order lines (user_id, order_id, order_time, product_id),
    #: e.g. replicated from a shop database
    extra_tables: tuple[str, ...] = field(default_factory=tuple)


class ModelEngine(Protocol):
    """Turns orders into recommendation tables (see the schemas above)."""

    name: str

    def buy_again(self, orders: OrdersSource, *, k: int) -> pa.Table:
        """Per user: items they bought before, best first (PER_USER_SCHEMA)."""
        ...

    def recommended_for_you(self, orders: OrdersSource, *, k: int) -> pa.Table:
        """Per user: items they have not bought yet, best first (PER_USER_SCHEMA)."""
        ...

    def associations(
        self, orders: OrdersSource, *, min_support: float, min_confidence: float, k: int
    ) -> pa.Table:
        """Per item: items bought in the same order, by lift (ASSOCIATIONS_SCHEMA)."""
        ...

    def popular(self, orders: OrdersSource, *, k: int) -> pa.Table:
        """The k items in most orders, for everyone (PER_USER_SCHEMA, ``user_id`` = EVERYONE)."""
        ...

    def buying_patterns(self, orders: OrdersSource, *, horizon_days: float) -> pa.Table:
        """Per customer: BG/NBD and Gamma-Gamma predictions (BUYING_PATTERNS_SCHEMA).

        Order amounts are ``properties.total``, else ``properties.revenue``, else the sum
        of ``products[].price * quantity``, else 0.
        """
        ...

    def close(self) -> None: ...
