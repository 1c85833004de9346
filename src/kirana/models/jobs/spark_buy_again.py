"""Buy again on Spark: TIFU-KNN's decayed personal frequency and neighbour smoothing, in SQL.

The same model as `kirana.models.recommenders.TIFUKNN` (read its docstring for the paper):

1. every basket gets a weight from its position in the user's sequence (groups of
   ``group_size`` baskets, decayed within a group by ``within_decay`` and across groups by
   ``group_decay``) — window functions compute exactly ``tifuknn.basket_weights``;
2. the user vector is the weighted sum of the user's baskets;
3. with ``n_neighbors > 0`` the score is ``alpha * own + (1 - alpha) * mean(neighbours)``
   over the ``n_neighbors`` users whose vectors are most cosine-similar.

Differences from the embedded model, both deliberate:

* only items the user bought are scored (the job is *buy again*; new items are the
  "recommended for you" job), so neighbours re-rank a user's own items rather than add
  new ones;
* similarities come from a self-join of user vectors on the item, which costs
  ``sum over items of (buyers of the item)^2`` — like the embedded engine's exact search it
  is quadratic in users; set ``n_neighbors = 0`` (personal frequency only) beyond a few
  tens of thousands of users, or replace the join with MLlib's LSH approximate join.

Ties are broken as the embedded recommenders do: more popular item first, then item id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class BuyAgainParams:
    """TIFU-KNN hyper-parameters (defaults: those tuned on the Instacart sample)."""

    group_size: int = 7
    within_decay: float = 0.8
    group_decay: float = 0.4
    #: neighbour users averaged in; 0 = decayed personal frequency only
    n_neighbors: int = 10
    #: weight of the user's own vector against the neighbours' mean
    alpha: float = 0.8

    def __post_init__(self) -> None:
        if self.group_size < 1 or self.n_neighbors < 0:
            raise ValueError("buy again: group_size must be >= 1 and n_neighbors >= 0")
        if not 0 <= self.alpha <= 1:
            raise ValueError("buy again: alpha must be in [0, 1]")


_WEIGHTS = """
WITH baskets AS (
    SELECT user_id, order_id, min(order_time) AS t FROM {lines} GROUP BY user_id, order_id
), numbered AS (
    SELECT user_id, order_id,
           row_number() OVER (PARTITION BY user_id ORDER BY t, order_id) - 1 AS p,
           count(*) OVER (PARTITION BY user_id) AS n
    FROM baskets
), grouped AS (
    SELECT *, CAST(ceil(n / {group_size}) AS BIGINT) AS g FROM numbered
), sized AS (
    SELECT *, n DIV g AS base, n % g AS extra, n DIV g + 1 AS big FROM grouped
), placed AS (
    SELECT user_id, order_id, g,
           CASE WHEN p < extra * big THEN p DIV big
                ELSE extra + (p - extra * big) DIV base END AS grp,
           CASE WHEN p < extra * big THEN p % big ELSE (p - extra * big) % base END AS pos,
           CASE WHEN p < extra * big THEN big ELSE base END AS size
    FROM sized
)
SELECT user_id, order_id,
       pow({within_decay}, size - 1 - pos) / size * pow({group_decay}, g - 1 - grp) / g AS w
FROM placed
"""

_VECTORS = """
SELECT l.user_id, l.product_id AS item_id, sum(w.w) AS v
FROM {lines} l JOIN {weights} w ON l.user_id = w.user_id AND l.order_id = w.order_id
GROUP BY l.user_id, l.product_id
"""

_NEIGHBOURS = """
WITH norms AS (
    SELECT user_id, sqrt(sum(v * v)) AS norm FROM {vectors} GROUP BY user_id
), unit AS (
    SELECT v.user_id, v.item_id, v.v / greatest(n.norm, 1e-12) AS x
    FROM {vectors} v JOIN norms n ON v.user_id = n.user_id
), similar AS (
    SELECT a.user_id, b.user_id AS neighbour, sum(a.x * b.x) AS sim
    FROM unit a JOIN unit b ON a.item_id = b.item_id AND a.user_id <> b.user_id
    GROUP BY a.user_id, b.user_id
)
SELECT user_id, neighbour FROM (
    SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY sim DESC, neighbour) AS r
    FROM similar
) WHERE r <= {n_neighbors}
"""

_SMOOTHED = """
SELECT own.user_id, own.item_id,
       {alpha} * own.v + (1 - {alpha}) * coalesce(sum(theirs.v), 0) / {n_neighbors} AS score
FROM {vectors} own
LEFT JOIN {neighbours} nb ON nb.user_id = own.user_id
LEFT JOIN {vectors} theirs ON theirs.user_id = nb.neighbour AND theirs.item_id = own.item_id
GROUP BY own.user_id, own.item_id, own.v
"""

_RANKED = """
SELECT user_id, item_id, score, CAST(r AS INT) AS rank FROM (
    SELECT s.user_id, s.item_id, s.score,
           row_number() OVER (
               PARTITION BY s.user_id ORDER BY s.score DESC, p.n DESC, s.item_id
           ) AS r
    FROM {scores} s JOIN {popularity} p ON s.item_id = p.item_id
) WHERE r <= {k}
"""


def buy_again(lines: DataFrame, params: BuyAgainParams, k: int) -> DataFrame:
    """Top ``k`` of each user's own items by TIFU-KNN score (user_id, item_id, score, rank).

    ``lines`` are distinct (user_id, order_id, order_time, product_id) rows.
    """
    spark = lines.sparkSession
    lines.createOrReplaceTempView("ba_lines")
    spark.sql(
        _WEIGHTS.format(
            lines="ba_lines",
            group_size=_double(params.group_size),
            within_decay=_double(params.within_decay),
            group_decay=_double(params.group_decay),
        )
    ).createOrReplaceTempView("ba_weights")
    vectors = spark.sql(_VECTORS.format(lines="ba_lines", weights="ba_weights")).cache()
    vectors.createOrReplaceTempView("ba_vectors")
    if params.n_neighbors > 0 and params.alpha < 1:
        spark.sql(
            _NEIGHBOURS.format(vectors="ba_vectors", n_neighbors=params.n_neighbors)
        ).createOrReplaceTempView("ba_neighbours")
        scores = _SMOOTHED.format(
            vectors="ba_vectors",
            neighbours="ba_neighbours",
            alpha=_double(params.alpha),
            n_neighbors=_double(params.n_neighbors),
        )
    else:
        scores = "SELECT user_id, item_id, v AS score FROM ba_vectors"
    spark.sql(scores).createOrReplaceTempView("ba_scores")
    spark.sql(
        "SELECT product_id AS item_id, count(DISTINCT user_id, order_id) AS n "
        "FROM ba_lines GROUP BY product_id"
    ).createOrReplaceTempView("ba_popularity")
    return spark.sql(_RANKED.format(scores="ba_scores", popularity="ba_popularity", k=int(k)))


def _double(value: float) -> str:
    """A Spark SQL double literal (a bare ``0.8`` would be a DECIMAL)."""
    return f"{float(value)!r}D"
