"""Implicit-feedback matrix factorisation (ALS) baseline, via the `implicit` library.

Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008):
purchases are treated as confidence ``1 + alpha * r`` that the user likes the item, and user
and item factors are fitted by alternating least squares (implicit uses the conjugate-gradient
solver of Takacs et al. 2011). It is the classic "recommended for you" model and the baseline
EASE and TIFU-KNN are compared against.

Runs on the CPU only, with a fixed seed and BLAS limited to one thread (implicit parallelises
over users itself and warns when BLAS threads compete with it). Each user's update is
independent of the others, so a fixed ``random_state`` gives identical factors whatever
``num_threads`` is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from kirana.models.recommenders.base import Recommendations, Recommender
from kirana.models.recommenders.data import Baskets

__all__ = ["ALS"]

_WEIGHTINGS = ("count", "binary", "log", "bm25")


class ALS(Recommender):
    """``implicit.cpu.als.AlternatingLeastSquares`` behind the Kirana interface.

    ``weighting`` turns the user x item basket counts into ``r``: the raw count, 1, log1p(count)
    or BM25 (which damps heavy users and best sellers, as in implicit's own examples).
    """

    kind = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        weighting: str = "log",
        random_state: int = 0,
        num_threads: int = 1,
    ) -> None:
        if weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting must be one of {_WEIGHTINGS}")
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.random_state = random_state
        self.num_threads = num_threads

    @property
    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "weighting": self.weighting,
            "random_state": self.random_state,
            "num_threads": self.num_threads,
        }

    def _weighted(self) -> sp.csr_matrix:
        x = self.purchased.copy()
        if self.weighting == "binary":
            x.data[:] = 1
        elif self.weighting == "log":
            x.data = np.log1p(x.data)
        elif self.weighting == "bm25":
            from implicit.nearest_neighbours import bm25_weight

            x = bm25_weight(x, K1=100, B=0.8).tocsr()
        return x.astype(np.float32)

    def _fit(self, baskets: Baskets) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
            )
            model.fit(self._weighted(), show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T

    def similar_items(self, item_ids: Any, k: int = 10) -> Recommendations:
        """Items whose factors are most cosine-similar to the given item's."""
        norms = np.linalg.norm(self.item_factors, axis=1)
        unit = self.item_factors / np.maximum(norms, 1e-12)[:, None]
        return self._similar(item_ids, k, lambda items: unit[items] @ unit.T)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors = arrays["user_factors"]
        self.item_factors = arrays["item_factors"]
