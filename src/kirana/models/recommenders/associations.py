"""Frequently bought together: item-to-item association rules with support, confidence, lift.

Agrawal, Imielinski and Swami, "Mining Association Rules between Sets of Items in Large
Databases" (SIGMOD 1993), restricted to pairs, which is what a "frequently bought together"
shelf needs. With N baskets, n_i baskets holding i and n_ij holding both:

    support(i, j) = n_ij / N,   confidence(i -> j) = n_ij / n_i,   lift = n_ij N / (n_i n_j)

Confidence alone favours best sellers (bananas go with everything); lift > 1 means the pair is
bought together more often than independence predicts, so lift is the default ranking.
All pair counts come from one sparse product ``B^T B`` of the binary baskets x items matrix
(no loop over pairs); items below ``min_count`` are dropped first, since none of their pairs
can reach it, which keeps the product small on long-tail catalogues.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from kirana.models.recommenders.base import Recommendations, Recommender
from kirana.models.recommenders.data import Baskets

__all__ = ["Associations"]

_METRICS = ("lift", "confidence", "support", "count")


class Associations(Recommender):
    """Pairwise association rules, ranked by ``by`` in `pairs` and `similar_items`.

    `recommend` scores item j by the strongest rule that fires, ``max_i confidence(i -> j)``
    over the items i the user bought (as rule-based classifiers do). Sums let many weak rules
    from incidental purchases outvote one strong rule, and lift overrates rare partners.
    """

    kind = "associations"

    def __init__(
        self,
        min_count: int = 2,
        min_support: float = 0.0,
        min_confidence: float = 0.0,
        by: str = "lift",
    ) -> None:
        if by not in _METRICS:
            raise ValueError(f"by must be one of {_METRICS}")
        self.min_count = min_count
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.by = by

    @property
    def params(self) -> dict[str, Any]:
        return {
            "min_count": self.min_count,
            "min_support": self.min_support,
            "min_confidence": self.min_confidence,
            "by": self.by,
        }

    def _fit(self, baskets: Baskets) -> None:
        self.n_baskets = baskets.n_baskets
        self.item_count = self.popularity.astype(np.int64)
        frequent = np.flatnonzero(self.item_count >= self.min_count)
        b = baskets.basket_matrix()[:, frequent]
        co = (b.T @ b).tocoo()
        i, j, n = frequent[co.row], frequent[co.col], np.rint(co.data).astype(np.int64)
        keep = (i != j) & (n >= self.min_count)
        keep &= n >= self.min_support * self.n_baskets
        keep &= n >= self.min_confidence * self.item_count[i]
        order = np.lexsort((j[keep], i[keep]))
        self.antecedent = i[keep][order].astype(np.int32)
        self.consequent = j[keep][order].astype(np.int32)
        self.pair_count = n[keep][order]

    def _metric(self, by: str) -> np.ndarray:
        n = self.pair_count.astype(np.float64)
        if by == "count":
            return n
        if by == "support":
            return n / self.n_baskets
        if by == "confidence":
            return n / self.item_count[self.antecedent]
        return (
            n
            * self.n_baskets
            / (self.item_count[self.antecedent] * self.item_count[self.consequent])
        )

    def _matrix(self, by: str) -> sp.csr_matrix:
        shape = (self.n_items, self.n_items)
        return sp.csr_matrix((self._metric(by), (self.antecedent, self.consequent)), shape=shape)

    def pairs(self, k: int | None = None, by: str | None = None) -> pd.DataFrame:
        """All rules (or the top ``k`` per antecedent by ``by``), one row per (i -> j).

        Columns: antecedent, consequent (external ids), count, support, confidence, lift;
        sorted by antecedent, then by ``by`` descending (ties: more popular consequent first).
        """
        by = by or self.by
        rank_key = self._metric(by)
        order = np.lexsort((self.consequent, -rank_key, self.antecedent))
        if k is not None:
            ant = self.antecedent[order]
            first = np.searchsorted(ant, ant, side="left")
            order = order[np.arange(len(order)) - first < k]
        a, c = self.antecedent[order], self.consequent[order]
        return pd.DataFrame(
            {
                "antecedent": self.item_ids[a],
                "consequent": self.item_ids[c],
                "count": self.pair_count[order],
                "support": self._metric("support")[order],
                "confidence": self._metric("confidence")[order],
                "lift": self._metric("lift")[order],
            }
        )

    def similar_items(self, item_ids: Any, k: int = 10, by: str | None = None) -> Recommendations:
        """The k items most associated with each item (by ``by``, default the model's)."""
        m = self._matrix(by or self.by)
        return self._similar(item_ids, k, lambda items: _dense(m[items], -np.inf))

    def _score(self, users: np.ndarray) -> np.ndarray:
        x = self.purchased[users]
        fired = self._matrix("confidence")[x.indices].tocoo()  # rules of every bought item
        owner = np.repeat(np.arange(len(users)), np.diff(x.indptr))[fired.row]
        out = np.zeros((len(users), self.n_items), np.float32)
        np.maximum.at(out, (owner, fired.col), fired.data.astype(np.float32))
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "antecedent": self.antecedent,
            "consequent": self.consequent,
            "pair_count": self.pair_count,
            "item_count": self.item_count,
            "n_baskets": np.asarray(self.n_baskets, np.int64),
        }

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.antecedent = arrays["antecedent"]
        self.consequent = arrays["consequent"]
        self.pair_count = arrays["pair_count"]
        self.item_count = arrays["item_count"]
        self.n_baskets = int(arrays["n_baskets"])


def _dense(rows: sp.csr_matrix, fill: float) -> np.ndarray:
    """Dense copy of sparse rows with ``fill`` where nothing is stored (no rule = no item)."""
    out = np.full(rows.shape, fill, np.float32)
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    out[r, rows.indices] = rows.data
    return out
