"""Orders for the embedded engine, read with DuckDB from a pinned version of the lake.

Two shapes: *order lines* (user_id, order_id, order_time µs, product_id), which the
recommenders take, and *transactions* (customer_id, order_id, date, amount), one row per
order, which the buying-pattern models take.

The ``events`` table is read at ``OrdersSource.version`` when the runner pinned one, so the
data version in the run registry is exactly what the job saw even while the lake loader
keeps committing. Customers are the lake's ``coalesce(user_id, anonymous_id)``, as in
`kirana.models.lake_input`. An order id seen twice (a resent order under a new messageId,
or the same order in a replicated order table) counts once.

`baskets` reads the order lines the recommenders take straight into `Baskets`: DuckDB
numbers users, baskets and items with integers, so only integer arrays (plus one external
id per user, order and item) reach Python, read in batches and sorted there. Its DuckDB
gets a memory limit (`default_memory_limit`) and a spill directory of its own, so a large
lake spills to disk instead of exhausting memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from kirana.lake.catalog import lake_tables
from kirana.models.jobs.engine import OrdersSource
from kirana.models.recommenders.data import Baskets, as_ids

#: Rows per Arrow batch when reading order lines into numpy.
BATCH_ROWS = 1 << 20

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


#: Per (user, order) of the sources, before the dedupe: the events' own product lists, and
#: for an extra table the number of its lines with a product (its lines are joined later).
_EVENT_HEADS = f"""
SELECT user_id, order_id, order_time, src, product_ids,
       coalesce(len(product_ids), 0) AS n_lines
FROM ({_EVENT_ORDERS})
"""

_EXTRA_HEADS = """
SELECT CAST(user_id AS VARCHAR), CAST(order_id AS VARCHAR),
       min(CAST(order_time AS TIMESTAMPTZ)), {src}, NULL::VARCHAR[], count(product_id)
FROM "{table}" WHERE user_id IS NOT NULL AND order_id IS NOT NULL GROUP BY 1, 2
"""

#: The extra table's lines of the orders it won, as (basket number, product id).
_EXTRA_LINES = """
SELECT k.b, CAST(x.product_id AS VARCHAR) AS product_id
FROM "{table}" x JOIN basket k
  ON k.src = {src} AND k.user_id = CAST(x.user_id AS VARCHAR)
 AND k.order_id = CAST(x.order_id AS VARCHAR)
WHERE x.product_id IS NOT NULL
"""

#: An order seen in several places counts once: events first, then the extra tables.
_DEDUPE = " QUALIFY row_number() OVER (PARTITION BY user_id, order_id ORDER BY src, order_time) = 1"


class NoOrders(ValueError):
    """The lake holds no orders to learn from (a terminal error: load data first)."""


def default_memory_limit() -> str:
    """DuckDB's memory limit when ``models.duckdb_memory_limit`` is unset: an eighth of the
    RAM (at least 1 GB).

    DuckDB's own default (80 %) leaves too little for the numpy arrays that the models
    build next to it, and DuckDB takes what it is allowed to: reading 100k users' orders
    (25M lines) used ~3 GB under a 6 GB limit and ~1 GB under a 1 GB one, for the same CPU
    time. Past the limit DuckDB spills its sorts, joins and aggregates to disk.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return "4GB"
    return f"{max(total // 8, 1 << 30) >> 20}MB"


def _open(
    source: OrdersSource, memory_limit: str | None, temp_dir: Path | None
) -> tuple[duckdb.DuckDBPyConnection, list[tuple[int, str, bool]]]:
    """A configured connection with ``events`` and the extra tables registered.

    Returns the connection and, per extra table, (src, name, has an amount column).
    """
    tables = lake_tables(source.lake_dir)
    if source.table not in tables:
        raise NoOrders(
            f"no {source.table!r} table in {source.lake_dir}: load events first "
            "(`kirana demo`, or send `Order Completed` events to the tracking API)"
        )
    extras = []
    for src, name in enumerate(source.extra_tables, start=1):
        if name not in tables:
            raise NoOrders(f"extra order table {name!r} is not in the lake ({source.lake_dir})")
        extras.append((src, name))
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET memory_limit = ?", [memory_limit or default_memory_limit()])
    if temp_dir is not None:
        temp_dir.parent.mkdir(parents=True, exist_ok=True)  # DuckDB makes only the last
        conn.execute("SET temp_directory = ?", [str(temp_dir)])
    events = DeltaTable(tables[source.table], version=source.version)
    conn.register("events", events.to_pyarrow_dataset())
    out = []
    for src, name in extras:
        dataset = DeltaTable(tables[name]).to_pyarrow_dataset()
        conn.register(name, dataset)
        out.append((src, name, "amount" in dataset.schema.names))
    return conn, out


def connect(
    source: OrdersSource, *, memory_limit: str | None = None, temp_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``orders``: one row per (user, order) of the source.

    ``memory_limit`` (DuckDB syntax, e.g. ``"8GB"``) defaults to `default_memory_limit`;
    ``temp_dir`` (where DuckDB spills) to DuckDB's own.
    """
    conn, extras = _open(source, memory_limit, temp_dir)
    parts = [_EVENT_ORDERS]
    for src, name, has_amount in extras:
        amount = "sum(TRY_CAST(amount AS DOUBLE))" if has_amount else "NULL::DOUBLE"
        parts.append(_EXTRA_ORDERS.format(table=name, amount=amount, src=src))
    conn.execute(
        "CREATE TEMP TABLE orders AS SELECT * FROM (" + " UNION ALL ".join(parts) + ")" + _DEDUPE
    )
    return conn


@contextmanager
def spill_dir(temp_dir: Path | None) -> Iterator[Path]:
    """A fresh directory for DuckDB to spill to, removed afterwards."""
    parent = temp_dir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="kirana-duckdb-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def baskets(
    source: OrdersSource, *, memory_limit: str | None = None, temp_dir: Path | None = None
) -> Baskets:
    """The source's order lines as `Baskets`, equal to ``Baskets.from_frame(order_lines(...),
    sequence_col="order_time")`` (items inside a basket may come in another order).

    DuckDB dedupes the orders as `connect` does, numbers the baskets in `Baskets` order
    (user id, order time, order id) and the items by id; Python reads the lines in batches
    as (basket, item) integers and sorts them. ``memory_limit`` and
    ``temp_dir`` as in `connect`; DuckDB spills into a fresh directory under ``temp_dir``
    (default: the system's temp dir) that is removed afterwards.
    """
    with spill_dir(temp_dir) as spill:
        conn, extras = _open(source, memory_limit, spill)
        try:
            conn.execute("SET preserve_insertion_order = false")
            conn.execute("SET enable_progress_bar = false")
            return _read_baskets(conn, extras)
        finally:
            conn.close()


def _read_baskets(conn: duckdb.DuckDBPyConnection, extras: list[tuple[int, str, bool]]) -> Baskets:
    heads = [_EVENT_HEADS] + [_EXTRA_HEADS.format(table=n, src=s) for s, n, _ in extras]
    conn.execute(
        "CREATE TEMP TABLE basket AS "
        "SELECT row_number() OVER (ORDER BY user_id, order_time, order_id) - 1 AS b, "
        "dense_rank() OVER (ORDER BY user_id) - 1 AS u, "
        "user_id, order_id, src, epoch_us(order_time) AS t, product_ids, n_lines "
        "FROM (SELECT * FROM (" + " UNION ALL ".join(heads) + ")" + _DEDUPE + ") "
        "WHERE n_lines > 0"
    )
    n_baskets, width, most_lines = conn.execute(
        "SELECT count(*), coalesce(max(strlen(order_id)), 0), coalesce(sum(n_lines), 0) FROM basket"
    ).fetchone()
    if n_baskets == 0:
        raise NoOrders("the lake has no `Order Completed` events with products yet")
    products = ["SELECT unnest(product_ids) AS product_id FROM basket WHERE src = 0"]
    products += [
        f'SELECT CAST(product_id AS VARCHAR) FROM "{n}" WHERE product_id IS NOT NULL'
        for _, n, _ in extras
    ]
    conn.execute(
        "CREATE TEMP TABLE item AS SELECT product_id, "
        "CAST(row_number() OVER (ORDER BY product_id) - 1 AS INTEGER) AS p "
        "FROM (SELECT DISTINCT product_id FROM (" + " UNION ALL ".join(products) + "))"
    )
    item_ids = conn.sql("SELECT product_id FROM item ORDER BY p").to_arrow_table()
    user_ids = conn.sql("SELECT any_value(user_id) FROM basket GROUP BY u ORDER BY u")
    user_ids = user_ids.to_arrow_table()

    # per basket, in basket order: user, time, order id (fixed-width str, filled by batch)
    basket_user = np.empty(n_baskets, np.int32)
    sequence = np.empty(n_baskets, np.int64)
    order_ids = np.empty(n_baskets, f"<U{max(width, 1)}")
    at = 0
    reader = conn.sql("SELECT u, t, order_id FROM basket ORDER BY b").to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        end = at + batch.num_rows
        basket_user[at:end] = batch.column(0).to_numpy()
        sequence[at:end] = batch.column(1).to_numpy()
        order_ids[at:end] = batch.column(2).to_numpy(zero_copy_only=False)
        at = end

    b_type = "INTEGER" if n_baskets < 2**31 else "BIGINT"
    lines = ["SELECT b, unnest(product_ids) AS product_id FROM basket WHERE src = 0"]
    lines += [_EXTRA_LINES.format(table=n, src=s) for s, n, _ in extras]
    # DuckDB cannot size an Arrow scan and would build the join's hash table on the extra
    # table's lines (every line, as strings) instead of on the baskets: keep the written
    # order, baskets on the build side; the small item table likewise
    conn.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
    try:
        reader = conn.sql(
            f"SELECT CAST(l.b AS {b_type}) AS b, i.p FROM ("
            + " UNION ALL ".join(lines)
            + ") l JOIN item i USING (product_id)"
        ).to_arrow_reader(BATCH_ROWS)
        line_basket, line_item = _distinct_pairs(reader, int(most_lines), len(item_ids))
    finally:
        conn.execute("RESET disabled_optimizers")
    return Baskets.from_codes(
        user_ids=as_ids(user_ids.column(0)),
        order_ids=order_ids,
        sequence=sequence,
        basket_user=basket_user,
        item_ids=as_ids(item_ids.column(0)),
        line_basket=line_basket,
        line_item=line_item,
    )


def _distinct_pairs(
    reader: pa.RecordBatchReader, most: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(basket, item) pairs read in batches, sorted by basket then item, each pair once.

    The pairs are packed into one int64 key (``basket * n_items + item``) and sorted by
    numpy, which is faster and leaner than a DuckDB ORDER BY; ``most`` bounds their number.
    """
    dtype = reader.schema.field(0).type.to_pandas_dtype()
    key = np.empty(most, np.int64)
    n = 0
    for batch in reader:
        rows = batch.num_rows
        if n + rows > most:
            raise RuntimeError(f"more order lines than the {most} counted")
        np.multiply(batch.column(0).to_numpy(), n_items, out=key[n : n + rows], dtype=np.int64)
        key[n : n + rows] += batch.column(1).to_numpy()
        n += rows
    key = key[:n]
    key.sort()
    if n > 1:
        repeated = np.flatnonzero(key[1:] == key[:-1])
        if len(repeated):
            key = np.delete(key, repeated + 1)
    baskets, items = np.empty(len(key), dtype), np.empty(len(key), np.int32)
    step = 1 << 24
    for start in range(0, len(key), step):
        part = key[start : start + step]
        baskets[start : start + step] = part // n_items
        items[start : start + step] = part % n_items
    return baskets, items


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
