"""`Baskets`: every user's orders in time order, as integer-indexed flat arrays.

Recommenders work on dense integer indices, not on external ids. `Baskets` maps user and item
ids to indices once, and stores each user's baskets in sequence order as a CSR of baskets:
``items[basket_ptr[b]:basket_ptr[b + 1]]`` are the items of basket ``b`` (in add-to-cart order,
duplicates removed), and the baskets of a user are contiguous. Next-basket models need the
order (TIFU-KNN decays over it); user x item models (EASE, ALS, associations) need sparse
matrices, which are one ``csr_matrix`` call away.

Item indices are sorted by descending basket count (ties by id), so index order is the
popularity order that `top_k` uses to break ties.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

__all__ = ["Baskets", "as_ids", "lookup"]


def as_ids(values: Any) -> np.ndarray:
    """A 1-d id array that npz can store without pickle: integers stay int64, the rest str."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)  # e.g. integer ids read as floats
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype == object and all(isinstance(v, int | np.integer) for v in arr.tolist()):
        return arr.astype(np.int64)
    return arr.astype(str)


def lookup(ids: np.ndarray, sorter: np.ndarray, query: Any) -> np.ndarray:
    """Index of each ``query`` id in ``ids`` (``sorter = argsort(ids)``), -1 when absent."""
    q = as_ids(query)
    if len(ids) == 0 or len(q) == 0 or (q.dtype.kind == "i") != (ids.dtype.kind == "i"):
        return np.full(len(q), -1, np.int64)
    pos = np.searchsorted(ids, q, sorter=sorter).clip(0, len(ids) - 1)
    found = sorter[pos]
    return np.where(ids[found] == q, found, -1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Baskets:
    """Users' baskets in sequence order (build with `from_arrays`, `from_frame`, `read`, ...).

    Attributes: ``user_ids`` (index -> id, sorted), ``item_ids`` (index -> id, most popular
    first), and per basket ``basket_user`` (user index), ``order_ids``, ``sequence`` (order
    number or time) and ``basket_ptr`` into ``items`` (item indices).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    order_ids: np.ndarray
    sequence: np.ndarray
    basket_user: np.ndarray
    basket_ptr: np.ndarray
    items: np.ndarray

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls, users: Any, orders: Any, items: Any, sequence: Any | None = None
    ) -> Baskets:
        """From one row per (user, order, item); ``sequence`` orders a user's baskets.

        Without ``sequence`` the order id is the sequence. Rows keep their given order inside a
        basket (add-to-cart order); repeated items in a basket count once.
        """
        users, orders, items = as_ids(users), as_ids(orders), as_ids(items)
        seq = orders if sequence is None else np.asarray(sequence)
        if not len(users) == len(orders) == len(items) == len(seq):
            raise ValueError("users, orders, items and sequence must have the same length")
        user_ids, u = np.unique(users, return_inverse=True)
        rows = np.lexsort((orders, seq, u))  # stable: add-to-cart order survives
        u, orders, items, seq = u[rows], orders[rows], items[rows], seq[rows]
        new = np.ones(len(u), bool)
        new[1:] = (u[1:] != u[:-1]) | (orders[1:] != orders[:-1]) | (seq[1:] != seq[:-1])
        basket = np.cumsum(new) - 1
        sorted_items, ic = np.unique(items, return_inverse=True)
        _, first = np.unique(basket * np.int64(len(sorted_items)) + ic, return_index=True)
        keep = np.sort(first)
        basket, ic = basket[keep], ic[keep]
        counts = np.bincount(ic, minlength=len(sorted_items))
        by_popularity = np.lexsort((sorted_items, -counts))
        remap = np.empty_like(by_popularity)
        remap[by_popularity] = np.arange(len(by_popularity))
        starts = np.flatnonzero(new)
        ptr = np.zeros(len(starts) + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(basket, minlength=len(starts)))
        return cls(
            user_ids=user_ids,
            item_ids=sorted_items[by_popularity],
            order_ids=orders[starts],
            sequence=seq[starts],
            basket_user=u[starts].astype(np.int32),
            basket_ptr=ptr,
            items=remap[ic].astype(np.int32),
        )

    @classmethod
    def from_codes(
        cls,
        *,
        user_ids: np.ndarray,
        order_ids: np.ndarray,
        sequence: np.ndarray,
        basket_user: np.ndarray,
        item_ids: np.ndarray,
        line_basket: np.ndarray,
        line_item: np.ndarray,
    ) -> Baskets:
        """From data already numbered, as a database can give it without external ids.

        ``user_ids`` are sorted; baskets are numbered in `Baskets` order (user index, then
        sequence, then order id), with ``basket_user``, ``order_ids`` and ``sequence`` per
        basket; lines are (``line_basket``, ``line_item``) pairs sorted by basket, each pair
        once, ``line_item`` indexing ``item_ids`` (any order; ids in no line are dropped).
        The result equals `from_arrays` on the same rows up to the order of the items inside
        a basket.
        """
        n_baskets = len(basket_user)
        counts = np.bincount(line_item, minlength=len(item_ids))
        used = np.flatnonzero(counts)
        by_popularity = used[np.lexsort((item_ids[used], -counts[used]))]
        remap = np.full(len(item_ids), -1, np.int32)
        remap[by_popularity] = np.arange(len(by_popularity), dtype=np.int32)
        ptr = np.zeros(n_baskets + 1, np.int64)
        np.cumsum(np.bincount(line_basket, minlength=n_baskets), out=ptr[1:])
        return cls(
            user_ids=user_ids,
            item_ids=item_ids[by_popularity],
            order_ids=order_ids,
            sequence=np.asarray(sequence),
            basket_user=np.asarray(basket_user, np.int32),
            basket_ptr=ptr,
            items=remap[line_item],
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame | pa.Table,
        *,
        user_col: str = "user_id",
        order_col: str = "order_id",
        item_col: str = "product_id",
        sequence_col: str | None = "order_number",
    ) -> Baskets:
        """From a pandas DataFrame or Arrow table; defaults match Instacart's column names.

        ``sequence_col`` may be an order number or a timestamp; None uses the order id.
        """

        def col(name: str) -> np.ndarray:
            c = frame[name] if isinstance(frame, pd.DataFrame) else frame.column(name)
            return c.to_numpy() if isinstance(c, pd.Series) else c.to_numpy(zero_copy_only=False)

        seq = col(sequence_col) if sequence_col else None
        return cls.from_arrays(col(user_col), col(order_col), col(item_col), seq)

    @classmethod
    def read(cls, path: str | Path, **columns: Any) -> Baskets:
        """From a CSV or Parquet orders file (``columns`` as in `from_frame`)."""
        path = Path(path)
        wanted = [
            columns.get("user_col", "user_id"),
            columns.get("order_col", "order_id"),
            columns.get("item_col", "product_id"),
        ]
        if columns.get("sequence_col", "order_number"):
            wanted.append(columns.get("sequence_col", "order_number"))
        if path.suffix.lower() in {".parquet", ".pq"} or path.is_dir():
            frame = pd.read_parquet(path, columns=wanted)
        else:
            frame = pd.read_csv(path, usecols=wanted)
        return cls.from_frame(frame, **columns)

    @classmethod
    def from_histories(cls, histories: Iterable[Any]) -> Baskets:
        """From `kirana.demo.instacart.UserHistory` objects (sequence = order_number)."""
        orders = [o for h in histories for o in h.orders]
        sizes = [len(o.product_ids) for o in orders]
        return cls.from_arrays(
            np.repeat([o.user_id for o in orders], sizes),
            np.repeat([o.order_id for o in orders], sizes),
            [p for o in orders for p in o.product_ids],
            np.repeat([o.order_number for o in orders], sizes),
        )

    # -- shape -------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_baskets(self) -> int:
        return len(self.basket_user)

    @cached_property
    def user_ptr(self) -> np.ndarray:
        """Baskets of user u are ``user_ptr[u]:user_ptr[u + 1]`` (in sequence order)."""
        ptr = np.zeros(self.n_users + 1, np.int64)
        ptr[1:] = np.cumsum(np.bincount(self.basket_user, minlength=self.n_users))
        return ptr

    @cached_property
    def _item_sorter(self) -> np.ndarray:
        return np.argsort(self.item_ids, kind="stable")

    def user_index(self, user_ids: Any) -> np.ndarray:
        """Index of each user id (-1 if absent)."""
        return lookup(self.user_ids, np.arange(self.n_users), user_ids)

    def item_index(self, item_ids: Any) -> np.ndarray:
        """Index of each item id (-1 if absent)."""
        return lookup(self.item_ids, self._item_sorter, item_ids)

    def __repr__(self) -> str:
        return f"Baskets(users={self.n_users}, baskets={self.n_baskets}, items={self.n_items})"

    # -- views -------------------------------------------------------------------------------
    def basket_matrix(self) -> sp.csr_matrix:
        """Binary baskets x items matrix (float32)."""
        data = np.ones(len(self.items), np.float32)
        shape = (self.n_baskets, self.n_items)
        return sp.csr_matrix((data, self.items, self.basket_ptr), shape=shape)

    def user_item_matrix(self) -> sp.csr_matrix:
        """Users x items, each entry the number of the user's baskets holding the item."""
        rows = np.repeat(self.basket_user, np.diff(self.basket_ptr))
        data = np.ones(len(self.items), np.float32)
        m = sp.csr_matrix((data, (rows, self.items)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        return m

    def item_counts(self) -> np.ndarray:
        """Number of baskets holding each item (non-increasing by construction)."""
        return np.bincount(self.items, minlength=self.n_items)

    def basket(self, b: int) -> np.ndarray:
        """External item ids of basket ``b``."""
        return self.item_ids[self.items[self.basket_ptr[b] : self.basket_ptr[b + 1]]]

    def to_frame(self) -> pd.DataFrame:
        """One row per (user, order, item), in the Instacart column names."""
        per_row = np.repeat(np.arange(self.n_baskets), np.diff(self.basket_ptr))
        return pd.DataFrame(
            {
                "user_id": self.user_ids[self.basket_user[per_row]],
                "order_id": self.order_ids[per_row],
                "product_id": self.item_ids[self.items],
                "order_number": self.sequence[per_row],
            }
        )

    # -- subsets -----------------------------------------------------------------------------
    def take(self, basket_mask: np.ndarray) -> Baskets:
        """Only the baskets where ``basket_mask`` is true, with fresh index mappings.

        Indices are rebuilt (not inherited) so that a training subset never knows about items
        or popularity that exist only in the held-out baskets.
        """
        per_row = np.repeat(np.asarray(basket_mask, bool), np.diff(self.basket_ptr))
        basket_of_row = np.repeat(np.arange(self.n_baskets), np.diff(self.basket_ptr))[per_row]
        return Baskets.from_arrays(
            self.user_ids[self.basket_user[basket_of_row]],
            self.order_ids[basket_of_row],
            self.item_ids[self.items[per_row]],
            self.sequence[basket_of_row],
        )

    def select_users(self, user_ids: Sequence[Any] | np.ndarray) -> Baskets:
        """Only the baskets of the given users."""
        wanted = np.zeros(self.n_users, bool)
        idx = self.user_index(user_ids)
        wanted[idx[idx >= 0]] = True
        return self.take(wanted[self.basket_user])

    def head(self, n_users: int) -> Baskets:
        """The first ``n_users`` users (by id): a small, deterministic slice for tests."""
        return self.select_users(self.user_ids[:n_users])

    def last_baskets(self, min_baskets: int = 2) -> np.ndarray:
        """Index of each user's last basket, for users with at least ``min_baskets`` baskets."""
        counts = np.diff(self.user_ptr)
        return (self.user_ptr[1:] - 1)[counts >= min_baskets]
