"""Ranking primitives shared by every recommender: the top-k kernel and `Recommendations`.

`top_k` breaks ties by the lowest index. Since `Baskets` orders item indices by descending
popularity, that makes ties go to the more popular item, deterministically, in every model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["UNSCORED", "Recommendations", "top_k"]

#: Score of items a model cannot score at all (e.g. outside EASE's item subset): they rank after
#: every scored item but, unlike ``-inf``, are still real recommendations (used as padding).
UNSCORED = np.float32(-1e30)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k best scores per row; ties go to the lowest index.

    ``argpartition`` alone picks tied items at the boundary arbitrarily; here every item strictly
    above the k-th value is kept and the remaining slots are filled with the lowest-index tied
    items, then the k winners are sorted by (score desc, index asc). O(rows x items), vectorised.
    """
    n, m = scores.shape
    k = min(k, m)
    if k <= 0 or n == 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0), scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= need))
    idx = np.nonzero(chosen)[1].reshape(n, k)
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


@dataclass(frozen=True, eq=False)
class Recommendations:
    """Ranked items per query (a user id for `recommend`, an item id for `similar_items`).

    ``item_ids`` and ``scores`` are (queries x k); a score of ``-inf`` marks padding (fewer than
    k items were eligible, e.g. after excluding purchases) and must be ignored.
    """

    keys: np.ndarray
    item_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def valid(self) -> np.ndarray:
        """Boolean (queries x k) mask of real (non-padding) entries."""
        return np.isfinite(self.scores)

    def items(self, i: int) -> list[Any]:
        """The ranked item ids of the i-th query, padding removed."""
        return self.item_ids[i][self.valid[i]].tolist()

    def __iter__(self) -> Iterator[tuple[Any, list[tuple[Any, float]]]]:
        valid = self.valid
        for i, key in enumerate(self.keys.tolist()):
            m = valid[i]
            yield (
                key,
                list(zip(self.item_ids[i][m].tolist(), self.scores[i][m].tolist(), strict=True)),
            )

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per (key, rank) with item_id and score; padding dropped."""
        n, k = self.item_ids.shape
        valid = self.valid.ravel()
        return pd.DataFrame(
            {
                "key": np.repeat(self.keys, k)[valid],
                "rank": np.tile(np.arange(1, k + 1), n)[valid],
                "item_id": self.item_ids.ravel()[valid],
                "score": self.scores.ravel()[valid],
            }
        )
