"""The embedded engine: DuckDB reads the lake, Kirana's numpy/scipy recommenders compute.

Everything runs in this process, which is right up to a few hundred thousand users (see
docs/benchmarks.md); the Spark engine takes the same jobs further. Models and their
hyper-parameters are the ones `kirana models evaluate` compares (tuned on the Instacart
sample's validation split, docs/models.md):

* buy again: TIFU-KNN, restricted to items the user bought before;
* recommended for you: EASE (or ALS via ``implicit``), items the user has not bought;
* frequently bought together: pairwise association rules ranked by lift;
* popular: G-TopFreq;
* buying patterns: BG/NBD + Gamma-Gamma (`kirana.models.buying_patterns`).

With ``evaluate`` each recommender is also refitted on a last-order holdout and its
Recall/NDCG@10 attached to the output as metrics (`engine.with_metrics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kirana.config import ModelSettings
from kirana.models.jobs import lake_orders
from kirana.models.jobs.engine import (
    ASSOCIATIONS_SCHEMA,
    BUYING_PATTERNS_SCHEMA,
    EVERYONE,
    PER_USER_SCHEMA,
    OrdersSource,
    with_metrics,
)
from kirana.models.jobs.holdout import buy_again_metrics, discovery_metrics
from kirana.models.recommenders import (
    ALS,
    EASE,
    TIFUKNN,
    UNSCORED,
    Associations,
    Baskets,
    GTopFreq,
    Recommendations,
    Recommender,
    top_k,
)

TIFU_PARAMS = {
    "n_neighbors": 10,
    "alpha": 0.8,
    "group_size": 7,
    "within_decay": 0.8,
    "group_decay": 0.4,
}
ALS_PARAMS = {"factors": 64, "regularization": 10.0, "alpha": 0.25, "weighting": "bm25"}
#: Selected for discovery (NDCG@10 on never-bought items of the validation split, Instacart
#: sample): a stronger ridge than the next-basket setting (l2 = 10), which mostly re-ranks
#: what the user already buys and, once purchases are excluded, lost to unbought best sellers.
EASE_PARAMS = {"l2": 500.0, "binary": True}


@dataclass
class EmbeddedEngine:
    """`ModelEngine` in-process; ``settings`` chooses the collaborative filter and evaluation."""

    settings: ModelSettings
    name: str = "embedded"
    #: DuckDB's memory limit while reading orders (e.g. ``"8GB"``); None: the settings'
    #: ``duckdb_memory_limit``, else an eighth of the RAM (`lake_orders.default_memory_limit`)
    duckdb_memory_limit: str | None = None
    #: where DuckDB spills past that limit; None: the settings' ``duckdb_temp_dir``, else the
    #: system's temp dir
    duckdb_temp_dir: Path | None = None

    def __post_init__(self) -> None:
        self.duckdb_memory_limit = self.duckdb_memory_limit or self.settings.duckdb_memory_limit
        self.duckdb_temp_dir = self.duckdb_temp_dir or self.settings.duckdb_temp_dir

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters a run records."""
        return {
            "tifu_knn": TIFU_PARAMS,
            "recommender": self.settings.recommender,
            "cf": self._cf().params,
            "min_pair_orders": self.settings.min_pair_orders,
        }

    def _cf(self) -> Recommender:
        if self.settings.recommender == "als":
            return ALS(**ALS_PARAMS)
        return EASE(**EASE_PARAMS, max_items=self.settings.ease_max_items)

    def _baskets(self, orders: OrdersSource) -> Baskets:
        return lake_orders.baskets(
            orders, memory_limit=self.duckdb_memory_limit, temp_dir=self.duckdb_temp_dir
        )

    # -- recommendations ---------------------------------------------------------------------
    def buy_again(self, orders: OrdersSource, *, k: int) -> pa.Table:
        baskets = self._baskets(orders)
        started = time.perf_counter()
        model = TIFUKNN(**TIFU_PARAMS).fit(baskets)
        table = _per_user(_rank_bought_items(model, k))
        metrics = _sizes(baskets, table, started)
        if self.settings.evaluate:
            metrics.update(buy_again_metrics(lambda: TIFUKNN(**TIFU_PARAMS), baskets))
        return with_metrics(table, metrics)

    def recommended_for_you(self, orders: OrdersSource, *, k: int) -> pa.Table:
        baskets = self._baskets(orders)
        started = time.perf_counter()
        model = self._cf().fit(baskets)
        table = _per_user(model.recommend(model.user_ids, k, exclude_purchased=True))
        metrics = _sizes(baskets, table, started)
        if self.settings.evaluate:
            metrics.update(discovery_metrics(self._cf, baskets))
        return with_metrics(table, metrics)

    def associations(
        self, orders: OrdersSource, *, min_support: float, min_confidence: float, k: int
    ) -> pa.Table:
        baskets = self._baskets(orders)
        started = time.perf_counter()
        model = Associations(
            min_count=self.settings.min_pair_orders,
            min_support=min_support,
            min_confidence=min_confidence,
            by="lift",
        ).fit(baskets)
        pairs = model.pairs(k=k, by="lift")
        # rank within each antecedent, in the order pairs() gives (best lift first); the
        # antecedents themselves are not sorted by id, so count, don't search
        rank = pairs.groupby("antecedent", sort=False).cumcount().to_numpy() + 1
        table = pa.table(
            {
                "item_id": pairs["antecedent"].astype(str),
                "related_item_id": pairs["consequent"].astype(str),
                "support": pairs["support"],
                "confidence": pairs["confidence"],
                "lift": pairs["lift"],
                "rank": rank.astype(np.int32),
            },
            schema=ASSOCIATIONS_SCHEMA,
        )
        metrics = _sizes(baskets, table, started)
        metrics["items_with_rules"] = int(pairs["antecedent"].nunique())
        metrics["mean_top_lift"] = float(pairs.loc[rank == 1, "lift"].mean())
        return with_metrics(table, metrics)

    def popular(self, orders: OrdersSource, *, k: int) -> pa.Table:
        baskets = self._baskets(orders)
        started = time.perf_counter()
        model = GTopFreq().fit(baskets)
        idx, counts = top_k(model.popularity[None, :], k)
        recs = Recommendations(np.array([EVERYONE]), model.item_ids[idx], counts)
        table = _per_user(recs)
        return with_metrics(table, _sizes(baskets, table, started))

    # -- buying patterns ---------------------------------------------------------------------
    def buying_patterns(self, orders: OrdersSource, *, horizon_days: float) -> pa.Table:
        from kirana.models.jobs.patterns import predict_buying_patterns

        with lake_orders.spill_dir(self.duckdb_temp_dir) as spill:  # its own, removed after
            conn = lake_orders.connect(
                orders, memory_limit=self.duckdb_memory_limit, temp_dir=spill
            )
            try:
                tx = lake_orders.transactions(conn)
            finally:
                conn.close()
        table, metrics = predict_buying_patterns(
            tx.to_pandas(), horizon_days, evaluate=self.settings.evaluate
        )
        return with_metrics(table.cast(BUYING_PATTERNS_SCHEMA), metrics)

    def close(self) -> None:
        """Nothing to release: every call opens and drops its own DuckDB connection."""


def create(settings: ModelSettings) -> EmbeddedEngine:
    """The engine-module entry point (see `kirana.models.jobs.engines`)."""
    return EmbeddedEngine(settings)


def _rank_bought_items(model: Recommender, k: int, batch: int = 1024) -> Recommendations:
    """Each user's own past items, ranked by the model; fewer than k when they bought fewer.

    Scores of items the user never bought are set to ``-inf`` (padding), which is what makes
    TIFU-KNN's neighbour-smoothed scores a *buy again* list rather than a next-basket one.
    """
    n_users = len(model.user_ids)
    k = min(k, model.n_items)
    out_idx = np.zeros((n_users, k), np.int64)
    out_val = np.full((n_users, k), -np.inf, np.float32)
    for start in range(0, n_users, batch):
        users = np.arange(start, min(start + batch, n_users))
        scores = np.asarray(model._score(users), np.float32)  # a model's own scores
        bought = model.purchased[users]
        keep = np.full(scores.shape, -np.inf, np.float32)
        rows = np.repeat(np.arange(len(users)), np.diff(bought.indptr))
        keep[rows, bought.indices] = scores[rows, bought.indices]
        out_idx[users], out_val[users] = top_k(keep, k)
    return Recommendations(model.user_ids, model.item_ids[out_idx], out_val)


def _per_user(recs: Recommendations) -> pa.Table:
    """Long PER_USER_SCHEMA rows from ranked lists (padding dropped).

    Items a model could not score (`UNSCORED`, e.g. outside EASE's item subset) still fill
    lists in popularity order; their score is written as 0 rather than -1e30.
    """
    frame = recs.to_frame()
    frame.loc[frame["score"] <= UNSCORED, "score"] = 0.0
    return pa.table(
        {
            "user_id": frame["key"].astype(str),
            "item_id": frame["item_id"].astype(str),
            "score": frame["score"].astype(np.float64),
            "rank": frame["rank"].astype(np.int32),
        },
        schema=PER_USER_SCHEMA,
    )


def _sizes(baskets: Baskets, table: pa.Table, started: float) -> dict[str, Any]:
    return {
        "users": baskets.n_users,
        "orders": baskets.n_baskets,
        "items": baskets.n_items,
        "rows": table.num_rows,
        "train_and_score_seconds": round(time.perf_counter() - started, 3),
    }
