"""Recommended for you on Spark: MLlib ALS on implicit feedback, purchases excluded.

MLlib's ALS with ``implicitPrefs=True`` is the Hu, Koren & Volinsky model that the embedded
engine fits with the ``implicit`` library: a user's purchases of an item give the confidence
``1 + alpha * r`` (``r`` = log1p of the number of baskets holding it, by default). Two
differences matter when comparing the engines' parameters:

* MLlib scales the regularisation of each user (item) by its number of ratings
  ("ALS-WR", Zhou et al. 2008); ``implicit`` does not, so equal ``regParam`` values are not
  equal models, and each engine has its own defaults;
* ``recommendForAllUsers(k)`` cannot skip the items a user already bought, so the top k is
  computed here instead: item factors are broadcast to the executors and each partition of
  users scores all items in blocks (numpy, through ``mapInArrow``), masks the user's own
  purchases and keeps the k best. Memory per task is ``block x items`` floats.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

WEIGHTINGS = ("log", "count", "binary")
_SCORED = "u int, i int, score double, rank int"


@dataclass(frozen=True)
class AlsParams:
    """MLlib ALS hyper-parameters (chosen on the Instacart sample's holdout, docs/models.md)."""

    rank: int = 64
    reg_param: float = 0.1
    #: confidence scale: c = 1 + alpha * r
    alpha: float = 10.0
    max_iter: int = 15
    weighting: str = "log"
    seed: int = 0
    #: users scored together in one numpy product (memory: block x items x 4 bytes)
    block: int = 512

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"recommended for you: weighting must be one of {WEIGHTINGS}")
        if self.rank < 1 or self.max_iter < 1 or self.reg_param < 0 or self.alpha < 0:
            raise ValueError("recommended for you: rank, max_iter >= 1; reg_param, alpha >= 0")


def recommended_for_you(lines: DataFrame, params: AlsParams, k: int) -> DataFrame:
    """Top ``k`` items each user has not bought, by ALS score (user_id, item_id, score, rank).

    ``lines`` are (user_id, order_id, product_id) rows.
    """
    from pyspark.ml.feature import StringIndexer
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    spark = lines.sparkSession
    counts = lines.groupBy("user_id", "product_id").agg(F.countDistinct("order_id").alias("n"))
    rating = {"log": F.log1p("n"), "count": F.col("n"), "binary": F.lit(1.0)}[params.weighting]
    indexer = StringIndexer(
        inputCols=["user_id", "product_id"], outputCols=["u", "i"], stringOrderType="alphabetAsc"
    )
    indexed = (
        indexer.fit(counts)
        .transform(counts)
        .select(
            "user_id",
            "product_id",
            F.col("u").cast("int").alias("u"),
            F.col("i").cast("int").alias("i"),
            rating.cast("float").alias("r"),
        )
        .cache()
    )
    model = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=True,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        seed=params.seed,
        coldStartStrategy="drop",
    ).fit(indexed)

    items = model.itemFactors.orderBy("id").toArrow()
    factors = np.zeros((int(_max_id(items.column("id"))) + 1, params.rank), np.float32)
    factors[items.column("id").to_numpy()] = _matrix(items.column("features"), params.rank)
    shared = spark.sparkContext.broadcast(factors)
    bought = indexed.groupBy("u").agg(F.collect_list("i").alias("bought"))
    users = model.userFactors.withColumnRenamed("id", "u").join(bought, "u")
    scored = users.mapInArrow(_top_k_scorer(shared, k, params.rank, params.block), _SCORED)

    user_ids = indexed.select("u", "user_id").distinct()
    item_ids = indexed.select("i", F.col("product_id").alias("item_id")).distinct()
    return (
        scored.join(user_ids, "u").join(item_ids, "i").select("user_id", "item_id", "score", "rank")
    )


def _max_id(column: pa.ChunkedArray) -> int:
    """Largest value of an integer column (-1 when empty)."""
    import pyarrow.compute as pc

    value = pc.max(column).as_py()
    return -1 if value is None else int(value)


def _matrix(column: pa.ChunkedArray | pa.ListArray, width: int) -> np.ndarray:
    """A list<float> column of fixed-length vectors as a (rows x width) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)


def _top_k_scorer(shared: object, k: int, rank: int, block: int):
    """The ``mapInArrow`` function: user factors + purchases in, best k unbought items out."""

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        items = shared.value  # type: ignore[attr-defined]
        for batch in batches:
            for start in range(0, batch.num_rows, block):
                part = batch.slice(start, block)
                yield _best_unbought(part, items, k, rank)

    return score


def _best_unbought(part: pa.RecordBatch, items: np.ndarray, k: int, rank: int) -> pa.RecordBatch:
    users = part.column("u").to_numpy()
    scores = _matrix(part.column("features"), rank) @ items.T
    bought = part.column("bought")
    rows = np.repeat(np.arange(len(users)), bought.value_lengths().to_numpy())
    scores[rows, bought.flatten().to_numpy()] = -np.inf
    kk = min(k, scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)  # best first, ties to the lower index
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    keep = np.isfinite(top_scores)
    ranks = np.broadcast_to(np.arange(1, kk + 1, dtype=np.int32), top.shape)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.broadcast_to(users[:, None], top.shape)[keep].astype(np.int32)),
            pa.array(top[keep].astype(np.int32)),
            pa.array(top_scores[keep].astype(np.float64)),
            pa.array(ranks[keep]),
        ],
        names=["u", "i", "score", "rank"],
    )
