"""Frequency baselines for next-basket recommendation: G-TopFreq and P-TopFreq.

Li et al., "A Next Basket Recommendation Reality Check" (ACM TOIS 2023) showed that these two
one-liners are the bar a next-basket model has to clear: on Instacart, P-TopFreq (a user's own
most frequently bought items) beat most published neural models, because most of a grocery
basket is repeat purchases (about 70 % of the items of a last Instacart order were bought by
the same user before). Any Kirana model is reported next to both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kirana.models.recommenders.base import Recommender
from kirana.models.recommenders.data import Baskets

__all__ = ["GTopFreq", "PTopFreq"]


class GTopFreq(Recommender):
    """G-TopFreq: the globally most frequently bought items, the same list for everyone."""

    kind = "g-topfreq"

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def _fit(self, baskets: Baskets) -> None:
        pass  # the base class already counts item popularity

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), self.n_items)).copy()


class PTopFreq(Recommender):
    """P-TopFreq: the user's own most frequently bought items, padded with the global top.

    Score = number of the user's baskets holding the item; unbought items score 0 and are
    ordered by global popularity by the shared tie-break, which is the padding. Ties between
    the user's own items also go to the more popular item.
    """

    kind = "p-topfreq"

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def _fit(self, baskets: Baskets) -> None:
        pass  # the base class keeps the user x item purchase counts

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.purchased[users].toarray()
