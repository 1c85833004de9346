"""TIFU-KNN: time-decayed personal item frequency plus nearest-neighbour users (buy again).

Hu, Zhang, Li, Li and Caverlee, "Modeling Personalized Item Frequency Information for
Next-basket Recommendation" (SIGIR 2020). The paper's point is that for grocery next-basket
recommendation a *personal item frequency* vector, decayed in time, beats RNN/attention basket
models; collaborative filtering then enters only as the average vector of similar users.

For a user with baskets b_1..b_n (oldest first, binary item vectors):

1. split the sequence into g consecutive groups of near-equal size: g = ceil(n / group_size)
   (groups of ``group_size`` baskets, as the paper describes it) or, with ``n_groups``,
   g = min(n_groups, n) (a fixed number of groups, the "group count" of public reproductions);
2. a group vector is the within-group decayed mean ``sum_j r_b^(size-1-j) b_j / size`` (the
   most recent basket of the group has weight 1);
3. the user vector is ``sum_i r_g^(g-1-i) group_i / g`` (the most recent group has weight 1);
4. the prediction is ``alpha * user + (1 - alpha) * mean(vectors of the k nearest users)``,
   neighbours by cosine similarity of user vectors.

All of 1-3 is one sparse product: each basket gets a scalar weight (vectorised over all
baskets), and ``user vectors = W @ baskets``. The neighbour search is exact and O(users^2)
in blocks: fine for tens of thousands of users, an ANN index is the next step beyond that.
Hyper-parameters are tuned on a validation split (see `kirana.models.evaluation.tune`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from kirana.models.recommenders.base import Recommender, csr_arrays, csr_from, top_k
from kirana.models.recommenders.data import Baskets

__all__ = ["TIFUKNN", "basket_weights"]


def basket_weights(
    baskets: Baskets,
    group_size: int,
    within_decay: float,
    group_decay: float,
    n_groups: int | None = None,
) -> np.ndarray:
    """Weight of every basket in its user's TIFU vector (steps 1-3 above), vectorised."""
    ptr = baskets.user_ptr
    n = np.diff(ptr)[baskets.basket_user]
    p = np.arange(baskets.n_baskets) - ptr[baskets.basket_user]  # 0 = the user's oldest
    g = np.minimum(n, n_groups) if n_groups else -(-n // group_size)
    base, extra = n // g, n % g  # the first `extra` groups hold base + 1 baskets
    big = base + 1
    in_big = p < extra * big
    rest = p - extra * big
    group = np.where(in_big, p // big, extra + rest // base)
    pos = np.where(in_big, p % big, rest % base)
    size = np.where(in_big, big, base)
    within = np.power(within_decay, (size - 1 - pos).astype(np.float64)) / size
    return within * np.power(group_decay, (g - 1 - group).astype(np.float64)) / g


class TIFUKNN(Recommender):
    """Next-basket / buy-again recommender (see the module docstring)."""

    kind = "tifu-knn"

    def __init__(
        self,
        n_neighbors: int = 300,
        alpha: float = 0.7,
        group_size: int = 7,
        within_decay: float = 0.9,
        group_decay: float = 0.7,
        n_groups: int | None = None,
    ) -> None:
        if not 0 <= alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")
        if group_size < 1 or n_neighbors < 0 or (n_groups is not None and n_groups < 1):
            raise ValueError("group_size and n_groups must be >= 1, n_neighbors >= 0")
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.group_size = group_size
        self.within_decay = within_decay
        self.group_decay = group_decay
        self.n_groups = n_groups

    @property
    def params(self) -> dict[str, Any]:
        return {
            "n_neighbors": self.n_neighbors,
            "alpha": self.alpha,
            "group_size": self.group_size,
            "within_decay": self.within_decay,
            "group_decay": self.group_decay,
            "n_groups": self.n_groups,
        }

    def _fit(self, baskets: Baskets) -> None:
        w = basket_weights(
            baskets, self.group_size, self.within_decay, self.group_decay, self.n_groups
        )
        rows = sp.csr_matrix(
            (w, (baskets.basket_user, np.arange(baskets.n_baskets))),
            shape=(baskets.n_users, baskets.n_baskets),
        )
        self.user_vectors = (rows @ baskets.basket_matrix()).astype(np.float32).tocsr()
        if self.alpha == 1:  # neighbours would get weight 0: skip the O(users^2) search
            self.neighbors = np.empty((baskets.n_users, 0), np.int32)
        else:
            self.neighbors = self._neighbors(self.user_vectors)

    def _neighbors(self, vectors: sp.csr_matrix, block: int = 1024) -> np.ndarray:
        """The ``n_neighbors`` most cosine-similar other users of every user (exact)."""
        n = vectors.shape[0]
        k = min(self.n_neighbors, n - 1)
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        unit = sp.diags(1 / np.maximum(norms, 1e-12)) @ vectors
        out = np.empty((n, max(k, 0)), np.int32)
        for start in range(0, n, block):
            stop = min(start + block, n)
            sim = (unit[start:stop] @ unit.T).toarray()
            sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not yourself
            out[start:stop] = top_k(sim, k)[0]
        return out

    def _score(self, users: np.ndarray) -> np.ndarray:
        own = self.user_vectors[users].toarray()
        k = self.neighbors.shape[1]
        if k == 0 or self.alpha == 1:
            return own
        pick = sp.csr_matrix(
            (
                np.full(len(users) * k, 1 / k, np.float32),
                self.neighbors[users].ravel(),
                np.arange(0, len(users) * k + 1, k),
            ),
            shape=(len(users), self.user_vectors.shape[0]),
        )
        return self.alpha * own + (1 - self.alpha) * (pick @ self.user_vectors).toarray()

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_arrays("vectors", self.user_vectors), "neighbors": self.neighbors}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_vectors = csr_from("vectors", arrays)
        self.neighbors = arrays["neighbors"]
