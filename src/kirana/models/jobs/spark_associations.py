"""Frequently bought together on Spark: pair rules with support, confidence and lift.

Two ways to get the same rules (formulas as in `kirana.models.recommenders.Associations`,
N baskets, n_i baskets holding i, n_ij holding both):

* ``"fpgrowth"`` — MLlib's FPGrowth (Han et al., SIGMOD 2000) mines the frequent itemsets,
  and its ``associationRules`` give support, confidence and lift; the rules with one item
  on each side are the pairs. FPGrowth cannot be told to stop at pairs, though, and grocery
  baskets repeat: a user who orders the same 15 items every week makes all 2^15 subsets
  frequent. On 300 Instacart users (7,317 baskets) a support of 0.003 gives 2,645 itemsets
  in ~12 s, 0.001 gives 5.7 million (up to 20 items) in ~55 s — so FPGrowth fits only
  when the support threshold is high enough (a few hundred baskets).
* ``"pairs"`` (the default) — a self-join of each basket's items on the basket counts
  exactly the pairs, at a cost of ``sum over baskets of size^2`` whatever the threshold
  (the embedded engine's ``B^T B`` product is the same computation).

Both rank each item's partners by lift, ties to the more popular partner, then by id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ALGORITHMS = ("pairs", "fpgrowth")


@dataclass(frozen=True)
class AssociationParams:
    """How rules are mined (thresholds come with each job)."""

    algorithm: str = "pairs"
    #: pairs seen in fewer baskets are dropped whatever the support (embedded default too)
    min_count: int = 2

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"associations: algorithm must be one of {ALGORITHMS}")
        if self.min_count < 1:
            raise ValueError("associations: min_count must be >= 1")


_PAIRS = """
WITH frequent AS (
    SELECT l.basket, l.item_id FROM {lines} l JOIN {counts} c ON l.item_id = c.item_id
    WHERE c.n >= {min_pair}
)
SELECT a.item_id AS i, b.item_id AS j, count(*) AS n_ij
FROM frequent a JOIN frequent b ON a.basket = b.basket AND a.item_id < b.item_id
GROUP BY a.item_id, b.item_id HAVING count(*) >= {min_pair}
"""

_RULES = """
WITH both_ways AS (
    SELECT i, j, n_ij FROM {pairs} UNION ALL SELECT j AS i, i AS j, n_ij FROM {pairs}
)
SELECT p.i AS item_id, p.j AS related_item_id,
       p.n_ij / {n} AS support, p.n_ij / ci.n AS confidence,
       p.n_ij * {n} / (ci.n * cj.n) AS lift, cj.n AS partner_count
FROM both_ways p JOIN {counts} ci ON p.i = ci.item_id JOIN {counts} cj ON p.j = cj.item_id
WHERE p.n_ij / ci.n >= {min_confidence}
"""

_FPGROWTH_RULES = """
SELECT element_at(r.antecedent, 1) AS item_id, element_at(r.consequent, 1) AS related_item_id,
       r.support, r.confidence, r.lift, c.n AS partner_count
FROM {rules} r JOIN {counts} c ON element_at(r.consequent, 1) = c.item_id
WHERE size(r.antecedent) = 1
"""

_RANKED = """
SELECT item_id, related_item_id, support, confidence, lift, CAST(r AS INT) AS rank FROM (
    SELECT *, row_number() OVER (
        PARTITION BY item_id ORDER BY lift DESC, partner_count DESC, related_item_id
    ) AS r
    FROM {rules}
) WHERE r <= {k}
"""


def associations(
    lines: DataFrame,
    params: AssociationParams,
    *,
    min_support: float,
    min_confidence: float,
    k: int,
) -> DataFrame:
    """Top ``k`` partners of every item by lift (ASSOCIATIONS_SCHEMA columns).

    ``lines`` are (user_id, order_id, product_id) rows; a basket is one (user, order).
    """
    from pyspark.sql import functions as F

    if not 0 <= min_support <= 1 or not 0 <= min_confidence <= 1:
        raise ValueError("associations: min_support and min_confidence must be in [0, 1]")
    spark = lines.sparkSession
    basket_items = lines.select(
        F.concat_ws("\u0000", "user_id", "order_id").alias("basket"),
        F.col("product_id").alias("item_id"),
    ).distinct()
    basket_items.cache().createOrReplaceTempView("fbt_lines")
    n_baskets = spark.sql("SELECT count(DISTINCT basket) FROM fbt_lines").first()[0]
    spark.sql(
        "SELECT item_id, count(*) AS n FROM fbt_lines GROUP BY item_id"
    ).createOrReplaceTempView("fbt_counts")
    # for a count, n_ij >= min_support * N  <=>  n_ij >= ceil(min_support * N)
    min_pair = max(params.min_count, math.ceil(min_support * n_baskets))
    if params.algorithm == "fpgrowth":
        rules = _fpgrowth_rules(basket_items, n_baskets, min_pair, min_confidence)
        rules.createOrReplaceTempView("fbt_fp_rules")
        query = _FPGROWTH_RULES.format(rules="fbt_fp_rules", counts="fbt_counts")
    else:
        spark.sql(
            _PAIRS.format(lines="fbt_lines", counts="fbt_counts", min_pair=min_pair)
        ).createOrReplaceTempView("fbt_pairs")
        query = _RULES.format(
            pairs="fbt_pairs",
            counts="fbt_counts",
            n=f"{float(n_baskets)!r}D",  # a double: a bare 4593.0 is a DECIMAL in Spark SQL
            min_confidence=f"{float(min_confidence)!r}D",
        )
    spark.sql(query).createOrReplaceTempView("fbt_rules")
    return spark.sql(_RANKED.format(rules="fbt_rules", k=int(k)))


def _fpgrowth_rules(
    basket_items: DataFrame, n_baskets: int, min_pair: int, min_confidence: float
) -> DataFrame:
    """MLlib's association rules (antecedent, consequent, confidence, lift, support)."""
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import functions as F

    baskets = basket_items.groupBy("basket").agg(F.collect_set("item_id").alias("items"))
    # FPGrowth keeps itemsets with count >= ceil(minSupport * N): aim just below min_pair
    support = (min_pair - 0.5) / n_baskets if n_baskets else 1.0
    model = FPGrowth(itemsCol="items", minSupport=support, minConfidence=min_confidence)
    return model.fit(baskets).associationRules
