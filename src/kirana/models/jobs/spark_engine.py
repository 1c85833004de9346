"""The Spark engine: the model jobs on Apache Spark (``pyspark``), over the same lake files.

Chosen with ``models.engine = "spark"`` (``KIRANA_MODELS__ENGINE=spark``); everything after
the engine — runner, run registry, versioned outputs, publishing — is shared with the
embedded engine, because both return Arrow tables of the shapes in `engine`.

=====================  ===============================================================
job                    on Spark
=====================  ===============================================================
buy again              TIFU-KNN in Spark SQL (`spark_buy_again`)
recommended for you    MLlib ALS, implicit feedback, purchases excluded (`spark_als`)
bought together        pair rules by a basket self-join, or MLlib FPGrowth
                       (`spark_associations`)
popular                basket counts in Spark SQL
buying patterns        per-order transactions in Spark, BG/NBD + Gamma-Gamma fitted on
                       the driver (`kirana.models.jobs.patterns`, shared with embedded)
=====================  ===============================================================

One session per engine, started at the first job (~10-15 s: a JVM) and stopped by
`close`. Results come back to the driver with ``DataFrame.toArrow()``, which suits local
mode and outputs up to a few million rows; on a cluster with bigger outputs, write them
as Parquet from the executors and commit those files to the Delta output instead
(docs/models.md, "Spark").
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from kirana.models.jobs import spark_input
from kirana.models.jobs.engine import (
    ASSOCIATIONS_SCHEMA,
    BUYING_PATTERNS_SCHEMA,
    EVERYONE,
    PER_USER_SCHEMA,
    OrdersSource,
    with_metrics,
)
from kirana.models.jobs.spark_als import AlsParams, recommended_for_you
from kirana.models.jobs.spark_associations import AssociationParams, associations
from kirana.models.jobs.spark_buy_again import BuyAgainParams, buy_again
from kirana.models.jobs.spark_holdout import holdout_metrics
from kirana.models.jobs.spark_session import jvm_pid, start_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkEngine:
    """`ModelEngine` on a Spark session (``master`` ``local[2]`` by default)."""

    name = "spark"

    def __init__(
        self,
        master: str = "local[2]",
        conf: Mapping[str, Any] | None = None,
        *,
        buy_again_params: BuyAgainParams | None = None,
        als_params: AlsParams | None = None,
        association_params: AssociationParams | None = None,
        evaluate: bool = False,
    ) -> None:
        self.master = master
        self.conf = dict(conf or {})
        self.buy_again_params = buy_again_params or BuyAgainParams()
        self.als_params = als_params or AlsParams()
        self.association_params = association_params or AssociationParams()
        self.evaluate = evaluate
        self._session: SparkSession | None = None
        self._checkpoints: str | None = None

    @property
    def session(self) -> SparkSession:
        """The engine's session, started on first use."""
        if self._session is None:
            self._session = start_session(self.master, self.conf)
            # ALS iterates; without checkpoints its lineage grows until the JVM's stack
            # overflows (SPARK-1006). On a cluster, set spark.checkpoint.dir to shared storage.
            if not self.conf.get("spark.checkpoint.dir"):
                self._checkpoints = tempfile.mkdtemp(prefix="kirana-spark-checkpoints-")
                self._session.sparkContext.setCheckpointDir(self._checkpoints)
        return self._session

    @property
    def jvm_pid(self) -> int:
        """The driver JVM's process id (its memory is not in this process's RSS)."""
        return jvm_pid(self.session)

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters a run records."""
        return {
            "master": self.master,
            "tifu_knn": vars(self.buy_again_params),
            "als": vars(self.als_params),
            "associations": vars(self.association_params),
        }

    # -- jobs ----------------------------------------------------------------------------------
    def buy_again(self, orders: OrdersSource, *, k: int) -> pa.Table:
        def model(lines: DataFrame, kk: int) -> DataFrame:
            return buy_again(lines, self.buy_again_params, kk)

        return self._per_user_job(orders, k, model, new_only=False)

    def recommended_for_you(self, orders: OrdersSource, *, k: int) -> pa.Table:
        def model(lines: DataFrame, kk: int) -> DataFrame:
            return recommended_for_you(lines, self.als_params, kk)

        return self._per_user_job(orders, k, model, new_only=True)

    def associations(
        self, orders: OrdersSource, *, min_support: float, min_confidence: float, k: int
    ) -> pa.Table:
        started = time.perf_counter()
        lines = self._lines(orders)
        rules = associations(
            lines,
            self.association_params,
            min_support=min_support,
            min_confidence=min_confidence,
            k=k,
        )
        table = _collect(rules.orderBy("item_id", "rank"), ASSOCIATIONS_SCHEMA)
        metrics = self._sizes(lines, table, started)
        if table.num_rows:
            first = pc.equal(table.column("rank"), 1)
            metrics["items_with_rules"] = int(pc.sum(first).as_py())
            top = table.filter(first).column("lift")
            metrics["mean_top_lift"] = float(pc.mean(top).as_py())
        return self._done(table, metrics)

    def popular(self, orders: OrdersSource, *, k: int) -> pa.Table:
        started = time.perf_counter()
        lines = self._lines(orders)
        lines.createOrReplaceTempView("popular_lines")
        top = self.session.sql(
            f"""SELECT '{EVERYONE}' AS user_id, product_id AS item_id, CAST(n AS DOUBLE) AS score,
                       CAST(row_number() OVER (ORDER BY n DESC, product_id) AS INT) AS rank
                FROM (SELECT product_id, count(*) AS n FROM popular_lines GROUP BY product_id)
                ORDER BY n DESC, product_id LIMIT {int(k)}"""
        )
        table = _collect(top.orderBy("rank"), PER_USER_SCHEMA)
        return self._done(table, self._sizes(lines, table, started))

    def buying_patterns(self, orders: OrdersSource, *, horizon_days: float) -> pa.Table:
        """Transactions are computed in Spark; the fit (a few parameters) runs on the driver."""
        from kirana.models.jobs.patterns import predict_buying_patterns

        tx = spark_input.transactions(spark_input.read_orders(self.session, orders)).toArrow()
        if tx.num_rows == 0:
            raise ValueError("the lake has no `Order Completed` events yet")
        table, metrics = predict_buying_patterns(
            tx.to_pandas(), horizon_days, evaluate=self.evaluate
        )
        return self._done(table.cast(BUYING_PATTERNS_SCHEMA), metrics)

    def close(self) -> None:
        """Stop the session (and its JVM's work); the next job would start a new one."""
        if self._session is not None:
            self._session.stop()
            self._session = None
        if self._checkpoints is not None:
            shutil.rmtree(self._checkpoints, ignore_errors=True)
            self._checkpoints = None

    # -- helpers -------------------------------------------------------------------------------
    def _lines(self, orders: OrdersSource) -> DataFrame:
        orders_df = spark_input.read_orders(self.session, orders)
        lines = spark_input.order_lines(orders_df).cache()
        if lines.isEmpty():
            raise ValueError("the lake has no `Order Completed` events with products yet")
        return lines

    def _per_user_job(
        self,
        orders: OrdersSource,
        k: int,
        model: Callable[[DataFrame, int], DataFrame],
        *,
        new_only: bool,
    ) -> pa.Table:
        started = time.perf_counter()
        lines = self._lines(orders)
        table = _collect(model(lines, k).orderBy("user_id", "rank"), PER_USER_SCHEMA)
        metrics = self._sizes(lines, table, started)
        if self.evaluate:
            metrics.update(holdout_metrics(lines, model, new_only=new_only))
        return self._done(table, metrics)

    def _sizes(self, lines: DataFrame, table: pa.Table, started: float) -> dict[str, Any]:
        from pyspark.sql import functions as F

        row = lines.agg(
            F.countDistinct("user_id").alias("users"),
            F.countDistinct("user_id", "order_id").alias("orders"),
            F.countDistinct("product_id").alias("items"),
        ).first()
        return {
            **row.asDict(),
            "rows": table.num_rows,
            "train_and_score_seconds": round(time.perf_counter() - started, 3),
        }

    def _done(self, table: pa.Table, metrics: dict[str, Any]) -> pa.Table:
        self.session.catalog.clearCache()  # cached lines and vectors of this job
        return with_metrics(table, {"engine": self.name, **metrics})


def _collect(frame: DataFrame, schema: pa.Schema) -> pa.Table:
    """A Spark result as an Arrow table of ``schema`` (columns by name, types cast)."""
    table = frame.select(*schema.names).toArrow()
    return table.cast(schema) if table.num_rows else schema.empty_table()


def create(settings: Any) -> SparkEngine:
    """The engine-module entry point (see `kirana.models.jobs.engines`).

    Reads the ``models`` settings defensively, so a settings section without the Spark
    fields (``spark_master``, ``spark_driver_memory``, ``spark_shuffle_partitions``,
    ``spark_conf``) still gives a working local engine.
    """
    import pyspark  # noqa: F401 (fail here, as an ImportError, when pyspark is missing)

    from kirana.models.jobs.spark_session import java_available

    if not java_available():
        from kirana.models.jobs.engines import EngineUnavailable

        raise EngineUnavailable(
            "the Spark engine needs Java 17+ (install a JDK or set JAVA_HOME), "
            "or use `--engine embedded`"
        )
    conf = {  # TOML gives numbers and booleans as such; Spark wants strings ("true")
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in (getattr(settings, "spark_conf", None) or {}).items()
    }
    for field, key in (
        ("spark_driver_memory", "spark.driver.memory"),
        ("spark_shuffle_partitions", "spark.sql.shuffle.partitions"),
    ):
        value = getattr(settings, field, None)
        if value is not None:
            conf.setdefault(key, str(value))
    return SparkEngine(
        master=getattr(settings, "spark_master", None) or "local[2]",
        conf=conf,
        association_params=AssociationParams(min_count=getattr(settings, "min_pair_orders", 2)),
        evaluate=bool(getattr(settings, "evaluate", False)),
    )
