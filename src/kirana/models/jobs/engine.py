"""The engine role: where a model job's heavy lifting runs.

Two engines implement it: the embedded one (DuckDB, numpy/scipy, ``implicit``)
and Spark (``pyspark``, MLlib ALS and FPGrowth). Both read the same lake files
and return Arrow tables of the same shape, so the job runner, the run registry,
the versioned outputs and publishing to serving are shared and engine-blind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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

    def close(self) -> None: ...
