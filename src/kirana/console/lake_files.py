"""Recent rows of the lake's ``events`` table without scanning all of it.

The console's overview and debugger ask about the last hour or the latest events of one
source. Opening the whole table (hundreds of files on the demo data) costs about a second
per request; the Delta log already records each file's row count and the minimum and
maximum of ``received_at``, ``log_offset`` and ``source_id``, so those statistics pick
the few files that can hold the rows, and DuckDB reads only them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads


class EventFiles:
    """The current files of ``events`` with their statistics (one Delta snapshot). A file
    without a statistic is always read (it may hold anything)."""

    def __init__(self, table_dir: Path) -> None:
        from deltalake import DeltaTable

        self.table_dir = table_dir
        table = DeltaTable(str(table_dir))
        self.schema = pa.schema(table.schema().to_arrow())
        self.actions = pa.table(table.get_add_actions(flatten=True))

    @classmethod
    def open(cls, lake_dir: Path) -> EventFiles | None:
        from kirana.lake.catalog import lake_tables

        path = lake_tables(lake_dir).get("events")
        return None if path is None else cls(path)

    @property
    def total_rows(self) -> int:
        return int(pc.sum(self.actions.column("num_records")).as_py() or 0)

    @property
    def newest_received(self) -> datetime | None:
        return pc.max(self.actions.column("max.received_at")).as_py()

    def _paths(self, mask: Any) -> list[str]:
        rows = self.actions.filter(mask) if mask is not None else self.actions
        return [str(self.table_dir / p) for p in rows.column("path").to_pylist()]

    def connect(self, paths: list[str]) -> duckdb.DuckDBPyConnection:
        """DuckDB with a view ``events`` over just these files."""
        conn = duckdb.connect()
        conn.execute("SET TimeZone = 'UTC'")
        dataset = pads.dataset(paths, format="parquet", schema=self.schema)
        conn.register("events", dataset)
        return conn

    def per_minute(self, since: datetime) -> dict[datetime, int]:
        """Rows received per minute from ``since`` (a whole minute) on. A file whose rows
        all arrived within one minute (the loader writes one per batch) is counted from the
        Delta log; only files spanning minutes (compacted ones) are read."""
        actions = self.actions.filter(
            pc.fill_null(
                pc.greater_equal(self.actions.column("max.received_at"), pa.scalar(since)), True
            )
        )
        first = pc.floor_temporal(actions.column("min.received_at"), unit="minute")
        last = pc.floor_temporal(actions.column("max.received_at"), unit="minute")
        whole = pc.fill_null(pc.equal(first, last), False)
        counted = (
            pa.table({"minute": first, "rows": actions.column("num_records")})
            .filter(whole)
            .group_by("minute")
            .aggregate([("rows", "sum")])
        )
        out = {
            m: int(n)
            for m, n in zip(
                counted.column("minute").to_pylist(),
                counted.column("rows_sum").to_pylist(),
                strict=True,
            )
        }
        spanning = [
            str(self.table_dir / path)
            for path in actions.filter(pc.invert(whole)).column("path").to_pylist()
        ]
        if spanning:
            rows = (
                self.connect(spanning)
                .execute(
                    "SELECT date_trunc('minute', received_at) AS m, count(*) FROM events "
                    "WHERE received_at >= $since GROUP BY m",
                    {"since": since},
                )
                .fetchall()
            )
            for minute, n in rows:
                out[minute] = out.get(minute, 0) + int(n)
        return dict(sorted(out.items()))

    def newest_first(self, source_id: str, after: int | None) -> list[tuple[str, int | None]]:
        """Files that may hold ``source_id``'s rows past log offset ``after``, with their
        largest log offset, the newest first (``None``: no statistic, may hold any)."""
        actions = self.actions
        mask = pc.and_(
            pc.fill_null(pc.less_equal(actions.column("min.source_id"), source_id), True),
            pc.fill_null(pc.greater_equal(actions.column("max.source_id"), source_id), True),
        )
        if after is not None:
            newer = pc.greater(actions.column("max.log_offset"), after)
            mask = pc.and_(mask, pc.fill_null(newer, True))
        candidates = actions.filter(mask)
        top = pc.fill_null(candidates.column("max.log_offset"), 2**63 - 1)  # unknown: first
        order = pc.sort_indices(top, sort_keys=[("", "descending")])
        chosen = candidates.take(order)
        return [
            (str(self.table_dir / path), top)
            for path, top in zip(
                chosen.column("path").to_pylist(),
                chosen.column("max.log_offset").to_pylist(),
                strict=True,
            )
        ]
