"""`Baskets`: construction from rows, frames, files and demo histories; subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kirana.demo.instacart import load_sample, sample_path
from kirana.models.recommenders import Baskets


def test_rows_become_ordered_deduplicated_baskets() -> None:
    b = Baskets.from_arrays(
        users=["u2", "u1", "u1", "u1", "u1", "u1"],
        orders=[7, 5, 5, 4, 4, 5],
        items=["x", "z", "y", "y", "x", "z"],  # "z" twice in order 5
        sequence=[1, 2, 2, 1, 1, 2],
    )
    assert b.user_ids.tolist() == ["u1", "u2"]
    assert b.n_baskets == 3 and b.order_ids.tolist() == [4, 5, 7]  # u1's orders by sequence
    assert [b.basket(i).tolist() for i in range(3)] == [["y", "x"], ["z", "y"], ["x"]]
    # item indices by popularity: x and y in 2 baskets (ties by id), z in 1
    assert b.item_ids.tolist() == ["x", "y", "z"] and b.item_counts().tolist() == [2, 2, 1]
    assert b.user_ptr.tolist() == [0, 2, 3]
    m = b.user_item_matrix().toarray()
    assert m.tolist() == [[1, 2, 1], [1, 0, 0]]


def test_sequence_not_file_order_decides() -> None:
    b = Baskets.from_arrays([1, 1, 1], [30, 10, 20], [3, 1, 2], sequence=[3, 1, 2])
    assert b.order_ids.tolist() == [10, 20, 30]
    no_seq = Baskets.from_arrays([1, 1, 1], [30, 10, 20], [3, 1, 2])
    assert no_seq.order_ids.tolist() == [10, 20, 30]  # the order id is the sequence


def test_pandas_arrow_and_histories_agree() -> None:
    sample = load_sample()
    users = sample.users[:25]
    frame = pd.read_csv(sample_path())
    frame = frame[frame.user_id.isin([u.user_id for u in users])]
    a = Baskets.from_histories(users)
    b = Baskets.from_frame(frame)
    c = Baskets.from_frame(pa.Table.from_pandas(frame.sample(frac=1.0, random_state=1)))
    for other in (b, c):
        for name in ("user_ids", "item_ids", "order_ids", "basket_user", "basket_ptr"):
            np.testing.assert_array_equal(getattr(a, name), getattr(other, name))
    np.testing.assert_array_equal(a.items, b.items)  # add-to-cart order kept (CSV is in it)
    assert a.n_baskets == sum(len(u.orders) for u in users)


def test_take_rebuilds_the_vocabulary() -> None:
    b = Baskets.from_arrays([1, 1, 2], [1, 2, 3], ["a", "b", "c"], [1, 2, 1])
    only_first = b.take(np.array([True, False, True]))
    assert only_first.item_ids.tolist() == ["a", "c"] and only_first.n_baskets == 2
    assert b.select_users([2]).user_ids.tolist() == [2]
    assert b.head(1).user_ids.tolist() == [1]
    assert b.user_index([2, 99]).tolist() == [1, -1]
    assert b.item_index(["c", "zz", 5]).tolist() == [2, -1, -1]


def test_read_parquet_and_csv(tmp_path) -> None:
    b = Baskets.from_histories(load_sample().users[:5])
    frame = b.to_frame()
    frame.to_parquet(tmp_path / "o.parquet")
    frame.to_csv(tmp_path / "o.csv", index=False)
    for path in (tmp_path / "o.parquet", tmp_path / "o.csv"):
        r = Baskets.read(path)
        np.testing.assert_array_equal(r.items, b.items)
        np.testing.assert_array_equal(r.item_ids, b.item_ids)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        Baskets.from_arrays([1, 2], [1], [1, 2])
