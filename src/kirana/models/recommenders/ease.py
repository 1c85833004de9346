"""EASE: "recommended for you" collaborative filtering with a closed-form item-item model.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019). EASE learns an item x
item weight matrix B minimising ``||X - X B||^2 + lambda ||B||^2`` subject to ``diag(B) = 0``
(an item may not predict itself), and the solution is closed form:

    P = (X^T X + lambda I)^-1,    B = I - P diagMat(1 / diag(P))

i.e. one Cholesky factorisation, no epochs, no seeds, and it is a strong baseline on
implicit-feedback benchmarks (it beats most deep models in Steck's paper). Scores for a user
are ``x_u B``; ``B[i, j]`` is how much buying i predicts buying j, which is also a good
"customers who bought i also buy j" list (`similar_items`).

Cost: B is a dense items x items float32 matrix (14,190 items: 0.8 GB, and about twice that
at peak while fitting). P is computed directly in O(items^3) or, when there are fewer users
than items (as in the 593-user Instacart sample), through the Woodbury identity in
O(users^2 items) — seconds instead of minutes. With ``max_items`` only the items bought by the
most users are modelled (memory and time shrink quadratically / cubically); the others get
the `UNSCORED` score and still pad lists, in popularity order. Half of the sample's items were
bought by a single user, about whom EASE learns little, so restricting costs little accuracy
(docs/models.md has both).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from kirana.models.recommenders.base import UNSCORED, Recommendations, Recommender
from kirana.models.recommenders.data import Baskets

__all__ = ["EASE", "ease_weights"]


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """The EASE matrix B (float32, zero diagonal) for a users x items matrix ``x``.

    P is computed in whichever form is cheaper: directly (O(items^3)) or, with fewer users
    than items, by the Woodbury identity ``P = (I - X^T (X X^T + l2 I)^-1 X) / l2``, which
    costs O(users^2 items) plus one items x items product.
    """
    n_users, n_items = x.shape
    if n_users < n_items:
        dense = x.toarray()
        gram = (dense.astype(np.float64) @ dense.T.astype(np.float64)) + l2 * np.eye(n_users)
        z = sla.cho_solve(sla.cho_factor(gram, check_finite=False), dense, check_finite=False)
        p = dense.T @ z.astype(np.float32)
        del dense, z
        p *= np.float32(-1 / l2)
        p[np.diag_indices_from(p)] += np.float32(1 / l2)
    else:
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += np.float32(l2)
        factor = sla.cho_factor(gram, overwrite_a=True, check_finite=False)
        p = sla.cho_solve(factor, np.eye(n_items, dtype=np.float32), check_finite=False)
        del factor, gram
    p /= -np.diag(p).copy()[None, :]  # B = I - P / diag(P), in place; I only fixes the diagonal
    p[np.diag_indices_from(p)] = 0
    return p


class EASE(Recommender):
    """EASE on the binary (or count) user x item matrix, optionally on the top items only."""

    kind = "ease"

    def __init__(
        self, l2: float = 200.0, max_items: int | None = None, binary: bool = True
    ) -> None:
        if l2 <= 0:
            raise ValueError("l2 must be positive (it makes X^T X + l2 I invertible)")
        self.l2 = l2
        self.max_items = max_items
        self.binary = binary

    @property
    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items, "binary": self.binary}

    def _fit(self, baskets: Baskets) -> None:
        users_per_item = np.bincount(self.purchased.indices, minlength=self.n_items)
        kept = np.arange(self.n_items)
        if self.max_items is not None and self.max_items < self.n_items:
            kept = np.sort(np.lexsort((kept, -users_per_item))[: self.max_items])
        self.kept = kept.astype(np.int32)
        self.weights = ease_weights(self._inputs(np.arange(self.purchased.shape[0])), self.l2)

    def _inputs(self, users: np.ndarray) -> sp.csr_matrix:
        x = self.purchased[users][:, self.kept]
        if self.binary:
            x.data[:] = 1
        return x

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), self.n_items), UNSCORED, np.float32)
        out[:, self.kept] = self._inputs(users) @ self.weights
        return out

    def similar_items(self, item_ids: Any, k: int = 10) -> Recommendations:
        """Items j with the largest ``B[i, j]``: what buying i predicts (i itself excluded)."""
        position = np.full(self.n_items, -1, np.int64)
        position[self.kept] = np.arange(len(self.kept))

        def rows(items: np.ndarray) -> np.ndarray:
            out = np.full((len(items), self.n_items), -np.inf, np.float32)
            known = position[items] >= 0
            out[np.ix_(known, self.kept)] = self.weights[position[items[known]]]
            return out

        return self._similar(item_ids, k, rows)

    def _state(self) -> dict[str, np.ndarray]:
        return {"kept": self.kept, "weights": self.weights}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.kept = arrays["kept"]
        self.weights = arrays["weights"]
