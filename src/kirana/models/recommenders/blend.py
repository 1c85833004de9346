"""A weighted blend of recommenders' scores (e.g. TIFU-KNN for buy-again + EASE to discover).

Next-basket models are good at the repeat part of a basket and weak at the new part, where
collaborative filtering helps (Li et al., "A Next Basket Recommendation Reality Check", TOIS
2023, separate the two). Scores of different models live on different scales, so each model's
scores are divided by the user's maximum before the weighted sum; items a model cannot score
(`UNSCORED`) count as 0 for it. Weights are tuned on the validation split like any other
hyper-parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from kirana.models.recommenders.base import UNSCORED, Recommender
from kirana.models.recommenders.data import Baskets

__all__ = ["Blend"]


class Blend(Recommender):
    """``sum_m weight_m * scores_m / max_user(scores_m)`` over the given models.

    With ``refit=False`` the models are used as already fitted (to tune the weights without
    refitting); `fit` then only checks that they were fitted on the same users and items.
    """

    kind = "blend"

    def __init__(
        self, models: Sequence[Recommender], weights: Sequence[float], refit: bool = True
    ) -> None:
        if len(models) != len(weights) or not models:
            raise ValueError("one weight per model, and at least one model")
        self.models = list(models)
        self.weights = [float(w) for w in weights]
        self.refit = refit

    @property
    def params(self) -> dict[str, Any]:
        return {"weights": self.weights, "refit": self.refit}

    def _fit(self, baskets: Baskets) -> None:
        for model in self.models:
            if self.refit:
                model.fit(baskets)
            same = np.array_equal(model.item_ids, self.item_ids) and np.array_equal(
                model.user_ids, self.user_ids
            )
            if not same:
                raise ValueError(f"{model!r} was fitted on different baskets")

    def _score(self, users: np.ndarray) -> np.ndarray:
        total = np.zeros((len(users), self.n_items), np.float32)
        for model, weight in zip(self.models, self.weights, strict=True):
            if weight == 0:
                continue
            s = np.asarray(model._score(users), np.float32)
            s[s <= UNSCORED] = 0
            top = s.max(axis=1, keepdims=True)
            total += weight * s / np.where(top > 0, top, 1)
        return total

    def save(self, path: str | Path) -> Path:
        path = super().save(path)
        for i, model in enumerate(self.models):
            model.save(path / f"part-{i}")
        return path

    @classmethod
    def _from_params(cls, params: dict[str, Any], path: Path) -> Self:
        models = [Recommender.load(path / f"part-{i}") for i in range(len(params["weights"]))]
        return cls(models, **params)

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:g}*{m!r}" for m, w in zip(self.models, self.weights, strict=True))
        return f"Blend({parts})"
