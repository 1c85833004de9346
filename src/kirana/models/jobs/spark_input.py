"""Orders from the lake as a Spark DataFrame, read from the Delta snapshot's Parquet files.

There are no delta-spark jars on this machine (and no network to fetch them), so Spark
reads the files of one snapshot that delta-rs lists (``DeltaTable(path, version).file_uris()``)
as plain Parquet. That is exactly the snapshot as long as the table uses neither deletion
vectors nor column mapping (Kirana's tables enable neither; `snapshot_uris` refuses tables
that do). On a cluster, add delta-spark and read ``spark.read.format("delta")`` instead.

The projection is the embedded engine's (``kirana.models.jobs.lake_orders``) in Spark SQL:
one row per order from each ``Order Completed`` event, attributed to ``user_id`` falling
back to ``anonymous_id``, plus replicated order tables; then order lines or transactions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deltalake import DeltaTable

from kirana.lake.catalog import lake_tables
from kirana.models.jobs.engine import OrdersSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The event columns the projection needs (given, so Spark does not open every footer).
EVENT_COLUMNS = (
    "user_id string, anonymous_id string, message_id string, event string, "
    "timestamp timestamp, properties string"
)
ORDERS = (
    "user_id string, order_id string, order_time timestamp, amount double, "
    "product_ids array<string>, src int"
)
_UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping"}
_PRODUCTS = "array<struct<product_id:string,price:string,quantity:string>>"

#: One row per ``Order Completed`` event (as ``lake_orders._EVENT_ORDERS`` in DuckDB).
EVENT_ORDERS_SQL = f"""
SELECT coalesce(user_id, anonymous_id) AS user_id,
       coalesce(get_json_object(properties, '$.order_id'), message_id) AS order_id,
       timestamp AS order_time,
       coalesce(try_cast(get_json_object(properties, '$.total') AS DOUBLE),
                try_cast(get_json_object(properties, '$.revenue') AS DOUBLE),
                aggregate(products, 0D, (acc, p) -> acc
                    + coalesce(try_cast(p.price AS DOUBLE), 0D)
                    * coalesce(try_cast(p.quantity AS DOUBLE), 1D))) AS amount,
       filter(transform(products, p -> p.product_id), i -> i IS NOT NULL) AS product_ids,
       0 AS src
FROM (SELECT *, from_json(get_json_object(properties, '$.products'), '{_PRODUCTS}') AS products
      FROM {{view}}
      WHERE event = 'Order Completed' AND coalesce(user_id, anonymous_id) IS NOT NULL)
"""


def snapshot_uris(path: Path, version: int | None = None) -> list[str]:
    """The Parquet files of a Delta table's snapshot (the current one, or ``version``)."""
    table = DeltaTable(str(path), version=version)
    features = set(table.protocol().reader_features or ())
    if features & _UNSUPPORTED_READER_FEATURES:
        raise ValueError(
            f"{path} uses {sorted(features & _UNSUPPORTED_READER_FEATURES)}, which plain Parquet"
            " reads cannot honour: add delta-spark to the cluster and read it as Delta"
        )
    return table.file_uris()


def read_orders(spark: SparkSession, source: OrdersSource) -> DataFrame:
    """One row per (user, order): user_id, order_id, order_time, amount, product_ids.

    An order seen twice (a resent event, or the same order in an extra table) counts once:
    events first, then the extra tables in order — as the embedded engine decides.
    """
    tables = lake_tables(Path(source.lake_dir))
    if source.table not in tables:
        raise FileNotFoundError(
            f"no {source.table!r} table in {source.lake_dir}: load events first "
            "(`kirana demo`, or send `Order Completed` events to the tracking API)"
        )
    uris = snapshot_uris(tables[source.table], source.version)
    if uris:
        events = spark.read.schema(EVENT_COLUMNS).parquet(*uris)
    else:  # a table created but never written to
        events = spark.createDataFrame([], EVENT_COLUMNS)
    view = f"kirana_{source.table}_snapshot"
    events.createOrReplaceTempView(view)
    orders = spark.sql(EVENT_ORDERS_SQL.format(view=view))
    for src, name in enumerate(source.extra_tables, start=1):
        if name not in tables:
            raise FileNotFoundError(f"extra order table {name!r} is not in {source.lake_dir}")
        orders = orders.unionByName(_extra_orders(spark, snapshot_uris(tables[name]), src))
    orders.createOrReplaceTempView("kirana_all_orders")
    return spark.sql(
        "SELECT user_id, order_id, order_time, amount, product_ids FROM ("
        "  SELECT *, row_number() OVER ("
        "    PARTITION BY user_id, order_id ORDER BY src, order_time) AS seen"
        "  FROM kirana_all_orders) WHERE seen = 1"
    )


def order_lines(orders: DataFrame) -> DataFrame:
    """Distinct (user_id, order_id, order_time µs, product_id) rows of `read_orders` output."""
    from pyspark.sql import functions as F

    return orders.select(
        "user_id",
        "order_id",
        F.unix_micros("order_time").alias("order_time"),
        F.explode(F.array_distinct("product_ids")).alias("product_id"),
    )


def transactions(orders: DataFrame) -> DataFrame:
    """customer_id, order_id, date, amount (>= 0; 0 when unknown): one row per order."""
    from pyspark.sql import functions as F

    return orders.select(
        F.col("user_id").alias("customer_id"),
        "order_id",
        F.col("order_time").alias("date"),
        F.greatest(F.coalesce("amount", F.lit(0.0)), F.lit(0.0)).alias("amount"),
    )


def _extra_orders(spark: SparkSession, uris: list[str], src: int) -> DataFrame:
    """A replicated order-line table (user_id, order_id, order_time, product_id[, amount])."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    if not uris:
        return spark.createDataFrame([], ORDERS.replace(", src int", "")).withColumn(
            "src", F.lit(src)
        )
    lines = spark.read.parquet(*uris)
    missing = {"user_id", "order_id", "order_time", "product_id"} - set(lines.columns)
    if missing:
        raise ValueError(f"extra order table lacks columns {sorted(missing)}")
    time = lines["order_time"]
    if isinstance(lines.schema["order_time"].dataType, NumericType):
        time = F.timestamp_micros(time.cast("long"))
    amount = F.sum(lines["amount"].cast("double")) if "amount" in lines.columns else F.lit(None)
    return (
        lines.where("user_id IS NOT NULL AND order_id IS NOT NULL")
        .groupBy(
            lines["user_id"].cast("string").alias("user_id"),
            lines["order_id"].cast("string").alias("order_id"),
        )
        .agg(
            F.min(time.cast("timestamp")).alias("order_time"),
            amount.cast("double").alias("amount"),
            F.collect_set(lines["product_id"].cast("string")).alias("product_ids"),
            F.lit(src).alias("src"),
        )
    )
