"""The `Recommender` base class: id mapping, exclusions, top-k and persistence for all models.

Models work on the integer indices of `Baskets` (see `data.py`), whose item indices are
ordered by descending popularity, so "lowest index wins" is the tie-break everywhere: a user
with fewer than k scored items is padded with the global best sellers, deterministically,
without every model re-implementing it.

Models are saved as ``model.json`` (kind and hyper-parameters) plus ``arrays.npz`` loaded with
``allow_pickle=False``: a model file can then never execute code, unlike a pickle.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from kirana.models.recommenders.data import Baskets, as_ids, lookup
from kirana.models.recommenders.ranking import UNSCORED, Recommendations, top_k

__all__ = ["UNSCORED", "Baskets", "Recommendations", "Recommender", "top_k"]

_FORMAT_VERSION = 1


class Recommender(ABC):
    """Fit on `Baskets`, then rank items for users (and, where meaningful, for items).

    Subclasses implement `_fit` and `_score` (dense scores for known users, by index) and list
    their hyper-parameters in `params`; the base class handles id mapping, unknown users (they
    get the global best sellers), excluding purchases, top-k and persistence.
    """

    kind: ClassVar[str]
    _registry: ClassVar[dict[str, type[Recommender]]] = {}
    batch_size: ClassVar[int] = 512

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Recommender._registry[cls.kind] = cls

    # -- subclass API ------------------------------------------------------------------------
    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-serialisable, such that ``type(self)(**params)`` rebuilds it."""

    @abstractmethod
    def _fit(self, baskets: Baskets) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores (len(users) x n_items) for user indices."""

    def _state(self) -> dict[str, np.ndarray]:
        """Fitted arrays specific to the subclass (saved to npz)."""
        return {}

    def _load_state(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Inverse of `_state`."""

    # -- public API --------------------------------------------------------------------------
    def fit(self, baskets: Baskets) -> Self:
        """Learn from every basket in ``baskets`` (refitting forgets the previous fit)."""
        self.__dict__.pop("_user_sorter", None)
        self.__dict__.pop("_item_sorter", None)
        self.user_ids = baskets.user_ids
        self.item_ids = baskets.item_ids
        self.purchased = baskets.user_item_matrix()
        self.popularity = baskets.item_counts().astype(np.float32)
        self._fit(baskets)
        return self

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def _user_sorter(self) -> np.ndarray:
        return np.argsort(self.user_ids, kind="stable")

    @cached_property
    def _item_sorter(self) -> np.ndarray:
        return np.argsort(self.item_ids, kind="stable")

    def user_index(self, user_ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Index of each user id, -1 for users not seen in `fit`."""
        return lookup(self.user_ids, self._user_sorter, user_ids)

    def item_index(self, item_ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Index of each item id, -1 for items not seen in `fit`."""
        return lookup(self.item_ids, self._item_sorter, item_ids)

    def recommend(
        self,
        user_ids: Sequence[Any] | np.ndarray,
        k: int = 10,
        *,
        exclude_purchased: bool = False,
    ) -> Recommendations:
        """The k best items for each user, best first.

        ``exclude_purchased=True`` drops items the user bought in the training baskets
        ("discover something new"); False is the buy-again / next-basket setting. Users unseen
        in `fit` get the most popular items (there is nothing to exclude for them).
        """
        keys = as_ids(user_ids)
        users = self.user_index(keys)
        k = min(k, self.n_items)
        out_idx = np.zeros((len(users), k), np.int64)
        out_val = np.zeros((len(users), k), np.float32)
        known = np.flatnonzero(users >= 0)
        unknown = np.flatnonzero(users < 0)
        if len(unknown):
            idx, val = top_k(self.popularity[None, :], k)
            out_idx[unknown], out_val[unknown] = idx, val
        for start in range(0, len(known), self.batch_size):
            rows = known[start : start + self.batch_size]
            scores = np.asarray(self._score(users[rows]), dtype=np.float32)
            if exclude_purchased:
                _mask(scores, self.purchased[users[rows]], -np.inf)
            out_idx[rows], out_val[rows] = top_k(scores, k)
        return Recommendations(keys, self.item_ids[out_idx], out_val)

    def similar_items(self, item_ids: Sequence[Any] | np.ndarray, k: int = 10) -> Recommendations:
        """Items most related to each given item (the item itself excluded), where meaningful."""
        raise NotImplementedError(f"{type(self).__name__} has no item-to-item similarity")

    def _similar(
        self, item_ids: Sequence[Any] | np.ndarray, k: int, rows_fn: Any
    ) -> Recommendations:
        """`similar_items` from ``rows_fn(item indices) -> dense scores``.

        Unknown items get a row of padding.
        """
        keys = as_ids(item_ids)
        items = self.item_index(keys)
        k = min(k, self.n_items - 1)
        out_idx = np.zeros((len(items), k), np.int64)
        out_val = np.full((len(items), k), -np.inf, np.float32)
        known = np.flatnonzero(items >= 0)
        for start in range(0, len(known), self.batch_size):
            rows = known[start : start + self.batch_size]
            scores = np.array(rows_fn(items[rows]), dtype=np.float32)
            scores[np.arange(len(rows)), items[rows]] = -np.inf
            out_idx[rows], out_val[rows] = top_k(scores, k)
        return Recommendations(keys, self.item_ids[out_idx], out_val)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` and ``arrays.npz`` into the directory ``path`` (created)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT_VERSION, "kind": self.kind, "params": self.params}
        (path / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        p = self.purchased
        arrays = {
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "purchased_indptr": p.indptr,
            "purchased_indices": p.indices,
            "purchased_data": p.data,
            "popularity": self.popularity,
        }
        arrays.update({f"state_{name}": a for name, a in self._state().items()})
        for name, a in arrays.items():
            if a.dtype == object:
                raise TypeError(f"{name}: object arrays cannot be saved without pickle")
        np.savez(path / "arrays.npz", **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model written by `save` (any kind, when called on `Recommender`)."""
        path = Path(path)
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT_VERSION:
            raise ValueError(f"unsupported model format {meta.get('format')!r}")
        model_cls = Recommender._registry[meta["kind"]]
        if not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {model_cls.__name__}, not a {cls.__name__}")
        model = model_cls._from_params(meta["params"], path)
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        model.user_ids = arrays["user_ids"]
        model.item_ids = arrays["item_ids"]
        shape = (len(model.user_ids), len(model.item_ids))
        model.purchased = sp.csr_matrix(
            (arrays["purchased_data"], arrays["purchased_indices"], arrays["purchased_indptr"]),
            shape=shape,
        )
        model.popularity = arrays["popularity"]
        model._load_state({n[6:]: a for n, a in arrays.items() if n.startswith("state_")})
        return model

    @classmethod
    def _from_params(cls, params: dict[str, Any], path: Path) -> Self:
        """Construct an unfitted model from saved params (composites also read ``path``)."""
        return cls(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _mask(scores: np.ndarray, rows: sp.csr_matrix, value: float) -> None:
    """Set ``scores[i, j] = value`` wherever ``rows[i, j]`` is stored (in place)."""
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    scores[r, rows.indices] = value


def csr_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays (for `Recommender._state`)."""
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.asarray(m.shape, np.int64),
    }


def csr_from(prefix: str, arrays: dict[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of `csr_arrays`."""
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=tuple(arrays[f"{prefix}_shape"].tolist()),
    )
