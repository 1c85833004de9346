"""Orders for the embedded engine, read with DuckDB from a pinned version of the lake.

Two shapes: *order lines* (user_id, order_id, order_time µs, product_id), which the
recommenders take, and *transactions* (customer_id, order_id, date, amount), one row per
order, which the buying-pattern models take.

The ``events`` table is read at ``OrdersSource.version`` when the runner pinned one, so the
data version in the run registry is exactly what the job saw even while the lake loader
keeps committing. Customers are the lake's ``coalesce(user_id, anonymous_id)``, as in
`kirana.models.lake_input`. An order id seen twice (a resent order under a new messageId,
or the same order in a replicated order table) counts once.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from kirana.lake.catalog import lake_tables
from kirana.models.jobs.engine import OrdersSource

#: One row per ``Order Completed`` event: its order, amount and product ids.
_EVENT_ORDERS = """
SELECT coalesce(user_id, anonymous_id) AS user_id,
       coalesce(properties->>'$.order_id', message_id) AS order_id,
       timestamp AS order_time,
       coalesce(TRY_CAST(properties->>'$.total' AS DOUBLE),
                TRY_CAST(properties->>'$.revenue' AS DOUBLE),
                list_sum(list_transform(products, lambda p:
                    coalesce(TRY_CAST(p->>'$.price' AS DOUBLE), 0)
                    * coalesce(TRY_CAST(p->>'$.quantity' AS DOUBLE), 1)))) AS amount,
       list_filter(list_transform(products, lambda p: p->>'$.product_id'),
                   lambda i: i IS NOT NULL) AS product_ids,
       0 AS src
FROM (SELECT *, TRY_CAST(json_extract(properties, '$.products') AS JSON[]) AS products
      FROM events
      WHERE event = 'Order Completed' AND coalesce(user_id, anonymous_id) IS NOT NULL)
"""

#: A replicated order-line table: user_id, order_id, order_time, product_id[, amount].
_EXTRA_ORDERS = """
SELECT CAST(user_id AS VARCHAR), CAST(order_id AS VARCHAR),
       min(CAST(order_time AS TIMESTAMPTZ)), {amount},
       list(DISTINCT CAST(product_id AS VARCHAR)) FILTER (WHERE product_id IS NOT NULL),
       {src}
FROM "{table}" WHERE user_id IS NOT NULL AND order_id IS NOT NULL GROUP BY 1, 2
"""


class NoOrders(ValueError):
    """The lake holds no orders to learn from (a terminal error: load data first)."""


def connect(source: OrdersSource) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``orders``: one row per (user, order) of the source."""
    tables = lake_tables(source.lake_dir)
    if source.table not in tables:
        raise NoOrders(
            f"no {source.table!r} table in {source.lake_dir}: load events first "
            "(`kirana demo`, or send `Order Completed` events to the tracking API)"
        )
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    events = DeltaTable(tables[source.table], version=source.version)
    conn.register("events", events.to_pyarrow_dataset())
    parts = [_EVENT_ORDERS]
    for src, name in enumerate(source.extra_tables, start=1):
        if name not in tables:
            raise NoOrders(f"extra order table {name!r} is not in the lake ({source.lake_dir})")
        dataset = DeltaTable(tables[name]).to_pyarrow_dataset()
        conn.register(name, dataset)
        has_amount = "amount" in dataset.schema.names
        amount = "sum(TRY_CAST(amount AS DOUBLE))" if has_amount else "NULL::DOUBLE"
        parts.append(_EXTRA_ORDERS.format(table=name, amount=amount, src=src))
    # An order seen in several places counts once: events first, then the extra tables.
    conn.execute(
        "CREATE TEMP TABLE orders AS SELECT * FROM ("
        + " UNION ALL ".join(parts)
        + ") QUALIFY row_number() OVER "
        "(PARTITION BY user_id, order_id ORDER BY src, order_time) = 1"
    )
    return conn


def order_lines(conn: duckdb.DuckDBPyConnection) -> pa.Table:
    """user_id, order_id, order_time (µs since epoch), product_id; one row per distinct line."""
    table = conn.sql(
        "SELECT DISTINCT user_id, order_id, epoch_us(order_time) AS order_time, "
        "unnest(product_ids) AS product_id FROM orders"
    ).to_arrow_table()
    if table.num_rows == 0:
        raise NoOrders("the lake has no `Order Completed` events with products yet")
    return table


def transactions(conn: duckdb.DuckDBPyConnection) -> pa.Table:
    """customer_id, order_id, date, amount (>= 0; 0 when unknown): one row per order.

    The amount is the order's ``total``, else its ``revenue``, else the sum of its products'
    ``price * quantity`` (an extra table's ``amount`` column, summed over the order's lines).
    """
    table = conn.sql(
        "SELECT user_id AS customer_id, order_id, order_time AS date, "
        "greatest(coalesce(amount, 0), 0) AS amount FROM orders"
    ).to_arrow_table()
    if table.num_rows == 0:
        raise NoOrders("the lake has no `Order Completed` events yet")
    return table
