"""Holdout quality of a Spark job, for the run registry (as `holdout` does for embedded).

Each user with two or more orders has their last order (by time, then order id) held
out; the job's model is refitted on the other orders and its top 10 compared with the
held-out basket, all in Spark SQL:

* buy again is judged on the whole held-out basket (``holdout_recall@10`` ...). Its list
  holds only items the user bought before, unlike the embedded engine's holdout, which
  scores TIFU-KNN's unrestricted next-basket list: the Spark figure is the one of the list
  users actually get;
* recommended for you only recommends unbought items, so it is judged on the held-out
  items the user had never bought (``holdout_new_recall@10`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

K = 10

_SPLIT = """
SELECT l.*, (b.last_rank = 1 AND b.n_orders >= 2) AS held_out FROM {lines} l JOIN (
    SELECT user_id, order_id, count(*) OVER (PARTITION BY user_id) AS n_orders,
           row_number() OVER (PARTITION BY user_id ORDER BY t DESC, order_id DESC) AS last_rank
    FROM (SELECT user_id, order_id, min(order_time) AS t FROM {lines} GROUP BY user_id, order_id)
) b ON l.user_id = b.user_id AND l.order_id = b.order_id
"""

_RELEVANT = """
SELECT DISTINCT t.user_id, t.product_id AS item_id FROM {split} t
WHERE t.held_out {new_only}
"""
_NEW_ONLY = """AND NOT EXISTS (
    SELECT 1 FROM {split} h
    WHERE NOT h.held_out AND h.user_id = t.user_id AND h.product_id = t.product_id)"""

_SCORES = """
WITH sizes AS (SELECT user_id, count(*) AS n FROM {relevant} GROUP BY user_id),
hits AS (
    SELECT r.user_id, count(*) AS hits, sum(1 / log2(r.rank + 1)) AS dcg
    FROM {recs} r JOIN {relevant} v ON r.user_id = v.user_id AND r.item_id = v.item_id
    WHERE r.rank <= {k} GROUP BY r.user_id
), per_user AS (
    SELECT s.user_id, coalesce(h.hits, 0) / s.n AS recall,
           coalesce(h.dcg, 0) / aggregate(sequence(1, least(s.n, {k})), 0D,
                                          (acc, r) -> acc + 1 / log2(r + 1)) AS ndcg,
           CASE WHEN h.hits > 0 THEN 1.0 ELSE 0.0 END AS hit
    FROM sizes s LEFT JOIN hits h ON s.user_id = h.user_id
)
SELECT count(*) AS users, avg(recall) AS recall, avg(ndcg) AS ndcg, avg(hit) AS hit
FROM per_user
"""


def holdout_metrics(
    lines: DataFrame, model: Callable[[DataFrame, int], DataFrame], *, new_only: bool
) -> dict[str, float]:
    """Recall/NDCG/hit@10 of ``model`` refitted without each user's last order."""
    spark = lines.sparkSession
    lines.createOrReplaceTempView("ho_lines")
    split = spark.sql(_SPLIT.format(lines="ho_lines")).cache()
    split.createOrReplaceTempView("ho_split")
    condition = _NEW_ONLY.format(split="ho_split") if new_only else ""
    spark.sql(_RELEVANT.format(split="ho_split", new_only=condition)).createOrReplaceTempView(
        "ho_relevant"
    )
    train = split.where("NOT held_out").drop("held_out")
    model(train, K).createOrReplaceTempView("ho_recs")
    row = spark.sql(_SCORES.format(relevant="ho_relevant", recs="ho_recs", k=K)).first()
    prefix = "holdout_new_" if new_only else "holdout_"
    if not row["users"]:
        return {"holdout_users": 0}
    return {
        "holdout_users": int(row["users"]),
        f"{prefix}recall@{K}": float(row["recall"]),
        f"{prefix}ndcg@{K}": float(row["ndcg"]),
        f"{prefix}hit@{K}": float(row["hit"]),
    }
