"""Orders from the lake, in the shape the recommenders take.

``Order Completed`` events carry ``properties.products[].product_id``; each
becomes one (user, order, time, item) row. Events are attributed to users by
``user_id`` (falling back to ``anonymous_id``), the way the events arrived.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from kirana.lake.catalog import connect, lake_tables

ORDERS_SQL = """
SELECT coalesce(user_id, anonymous_id) AS user_id,
       coalesce(properties->>'$.order_id', message_id) AS order_id,
       epoch_us(timestamp) AS order_time,
       CAST(p.product->>'$.product_id' AS VARCHAR) AS product_id
FROM (
    SELECT user_id, anonymous_id, message_id, timestamp, properties,
           unnest(CAST(json_extract(properties, '$.products') AS JSON[])) AS product
    FROM events WHERE event = 'Order Completed'
) p
WHERE p.product->>'$.product_id' IS NOT NULL
"""


def orders_from_lake(lake_dir: Path) -> pa.Table:
    """Columns user_id, order_id, order_time (µs), product_id; empty when there is no lake."""
    if "events" not in lake_tables(lake_dir):
        raise FileNotFoundError(f"no events table in {lake_dir}; load data first (`kirana demo`)")
    return connect(lake_dir).sql(ORDERS_SQL).to_arrow_table()
