"""`lake_orders.baskets`: integer-coded reading gives the baskets the string path gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from kirana.models.jobs import lake_orders
from kirana.models.jobs.engine import OrdersSource
from kirana.models.recommenders import Baskets
from tests.models.jobs_lake import demo_events, load_lake


def _by_string_path(source: OrdersSource) -> Baskets:
    """What the embedded engine read before: order lines as strings, then `from_frame`."""
    lines = lake_orders.order_lines(lake_orders.connect(source))
    return Baskets.from_frame(lines, sequence_col="order_time")


def _sorted_items(b: Baskets) -> np.ndarray:
    """Item ids row by row, sorted inside each basket (the one thing allowed to differ)."""
    per_row = np.repeat(np.arange(b.n_baskets), np.diff(b.basket_ptr))
    ids = b.item_ids[b.items]
    return ids[np.lexsort((ids, per_row))]


def assert_same(coded: Baskets, reference: Baskets) -> None:
    for name in ("user_ids", "item_ids", "order_ids", "sequence", "basket_user", "basket_ptr"):
        got, want = getattr(coded, name), getattr(reference, name)
        assert got.dtype.kind == want.dtype.kind, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert coded.items.dtype == reference.items.dtype
    np.testing.assert_array_equal(_sorted_items(coded), _sorted_items(reference))
    np.testing.assert_array_equal(coded.item_counts(), reference.item_counts())


def _order(message: str, user: str | None, order: str, when: datetime, products: list) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": message,
        "userId": user,
        "anonymousId": None if user else "anon-1",
        "timestamp": when.isoformat(),
        "properties": {"order_id": order, "products": products},
    }


def _day(d: int, hour: int = 0) -> datetime:
    return datetime(2025, 6, d, hour, tzinfo=UTC)


def _p(*ids) -> list[dict]:
    return [{"product_id": i} for i in ids]


@pytest.fixture(scope="module")
def tricky(tmp_path_factory: pytest.TempPathFactory) -> OrdersSource:
    """Events and two extra tables with every awkward case the dedupe and coding meet."""
    data_dir = tmp_path_factory.mktemp("tricky")
    load_lake(
        data_dir,
        [
            _order("m1", "10", "o1", _day(1), _p("a", "b", "a")),  # repeated item
            _order("m2", "9", "o2", _day(1), _p(7, "10", "9")),  # numeric product ids
            _order("m3", "10", "o3", _day(2), _p("b")),
            _order("m4", "10", "o3", _day(3), _p("c")),  # resent later: the first wins
            _order("m5", None, "o4", _day(2), _p("a", None)),  # anonymous; a NULL product
            _order("m6", "u1", "o10", _day(4), _p("d")),  # same user and time: order id
            _order("m7", "u1", "o9", _day(4), _p("e")),  # decides ("o10" < "o9")
            _order("m8", "u1", "o5", _day(5), []),  # no products: no basket
            _order("m9", "u2", "o6", _day(5), _p("b")),  # also in shop: the event wins
            _order("m10", "é", "o7", _day(6), _p("ü", "a")),  # non-ASCII ids
        ],
    )
    ts = pa.timestamp("us", "UTC")
    shop = pa.table(
        {
            "user_id": ["u2", "u2", "10", "10", "10", "u3", "u3", "u4", None, "u5", "u5"],
            "order_id": ["o6", "o6", "s1", "s1", "s1", "s2", "s3", "s4", "s5", "s6", None],
            "order_time": pa.array(
                [_day(d, h) for d, h in [(5, 0), (5, 0), (7, 0), (7, 1), (7, 0), (8, 0)]]
                + [_day(d) for d in (8, 9, 9, 10, 10)],
                ts,
            ),
            # "only-lost" is in a losing duplicate only: it must not become an item
            "product_id": ["only-lost", "b", "x", "y", "x", None, "z", None, "q", "w", "w"],
        }
    )
    write_deltalake(data_dir / "lake" / "shop", shop)
    crm = pa.table(  # integer ids, duplicating shop's and the events' orders
        {
            "user_id": pa.array([10, 10, 11, 11, 12], pa.int64()),
            "order_id": pa.array([1, 2, 3, 3, 4], pa.int64()),
            "order_time": pa.array([_day(1), _day(2), _day(3), _day(3), _day(3)], ts),
            "product_id": pa.array([100, 101, 102, None, 100], pa.int64()),
        }
    )
    write_deltalake(data_dir / "lake" / "crm", crm)
    dup = pa.table(  # the same (user, order) as shop's s1 and s2: shop (listed first) wins
        {
            "user_id": ["10", "u3"],
            "order_id": ["s1", "s2"],
            "order_time": pa.array([_day(1), _day(1)], ts),
            "product_id": ["never", "never"],
        }
    )
    write_deltalake(data_dir / "lake" / "dup", dup)
    return OrdersSource(data_dir / "lake", extra_tables=("shop", "crm", "dup"))


def test_demo_lake_reads_the_same(tmp_path: Path) -> None:
    load_lake(tmp_path, demo_events(12))
    source = OrdersSource(tmp_path / "lake")
    coded = lake_orders.baskets(source)
    assert coded.n_users == 12
    assert_same(coded, _by_string_path(source))


def test_awkward_ids_and_duplicates_read_the_same(tricky: OrdersSource) -> None:
    coded = lake_orders.baskets(tricky)
    assert_same(coded, _by_string_path(tricky))
    # spot checks of what the dedupe means, on the coded path
    orders = dict(zip(coded.order_ids.tolist(), range(coded.n_baskets), strict=True))
    assert "o5" not in orders and "s5" not in orders  # no products / no user
    assert coded.basket(orders["o3"]).tolist() == ["b"]  # the first of a resent order
    assert coded.basket(orders["o6"]).tolist() == ["b"]  # the event, not the shop's lines
    assert sorted(coded.basket(orders["s1"]).tolist()) == ["x", "y"]  # shop over dup
    assert "s2" not in orders  # shop's s2 has only a NULL product and beats dup's line
    assert "only-lost" not in coded.item_ids and "never" not in coded.item_ids
    assert {"7", "9", "10", "100", "ü"} <= set(coded.item_ids.tolist())
    assert coded.user_ids.tolist() == sorted(coded.user_ids.tolist())
    assert coded.user_ids.tolist()[:4] == ["10", "11", "12", "9"]  # string order
    u1 = coded.user_index(["u1"])[0]
    firsts = coded.order_ids[coded.basket_user == u1].tolist()
    assert firsts == ["o10", "o9"]


def test_spills_under_a_small_memory_limit(tricky: OrdersSource, tmp_path: Path) -> None:
    coded = lake_orders.baskets(tricky, memory_limit="64MB", temp_dir=tmp_path / "spill")
    assert_same(coded, _by_string_path(tricky))
    assert list((tmp_path / "spill").iterdir()) == []  # its spill directory is gone


def test_memory_settings_reach_duckdb(monkeypatch, tmp_path: Path) -> None:
    from kirana.config import load_settings
    from kirana.models.jobs.embedded import EmbeddedEngine

    assert lake_orders.default_memory_limit().endswith("MB")
    monkeypatch.setenv("KIRANA_MODELS__DUCKDB_MEMORY_LIMIT", "3GB")
    monkeypatch.setenv("KIRANA_MODELS__DUCKDB_TEMP_DIR", str(tmp_path / "t"))
    engine = EmbeddedEngine(load_settings(tmp_path / "data").models)
    assert engine.duckdb_memory_limit == "3GB" and engine.duckdb_temp_dir == tmp_path / "t"
    assert EmbeddedEngine(engine.settings, duckdb_memory_limit="2GB").duckdb_memory_limit == "2GB"
    monkeypatch.setenv("KIRANA_MODELS__DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="duckdb_memory_limit"):
        load_settings(tmp_path / "data")
    load_lake(tmp_path, demo_events(2))
    conn = lake_orders.connect(
        OrdersSource(tmp_path / "lake"), memory_limit="1GB", temp_dir=tmp_path / "t"
    )
    setting = "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    [(limit, temp)] = conn.sql(setting).fetchall()
    assert limit.replace(" ", "") in {"1GB", "953.6MiB"} and temp == str(tmp_path / "t")


def test_no_products_is_no_orders(tmp_path: Path) -> None:
    load_lake(tmp_path, [_order("m1", "u1", "o1", _day(1), [])])
    with pytest.raises(lake_orders.NoOrders, match="with products"):
        lake_orders.baskets(OrdersSource(tmp_path / "lake"))


def test_from_codes_equals_from_arrays() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    users = rng.choice(np.array(["u10", "u9", "a", "b", "é"]), n)
    orders = rng.integers(0, 300, n).astype(str)
    items = rng.choice(np.array([f"i{k}" for k in range(40)]), n)
    seq = rng.integers(0, 5, n) * 1000
    # one sequence value per (user, order), as the lake gives
    key = np.char.add(np.char.add(users, "/"), orders)
    _, first = np.unique(key, return_inverse=True)
    seq = seq[np.unique(first, return_index=True)[1]][first]
    reference = Baskets.from_arrays(users, orders, items, seq)
    # number everything the way DuckDB does in lake_orders.baskets
    item_ids, p = np.unique(items, return_inverse=True)
    rows = np.lexsort((items, orders, seq, users))
    new = np.ones(n, bool)
    u_s, o_s, s_s = users[rows], orders[rows], seq[rows]
    new[1:] = (u_s[1:] != u_s[:-1]) | (o_s[1:] != o_s[:-1]) | (s_s[1:] != s_s[:-1])
    b = np.cumsum(new) - 1
    pairs = np.unique(np.stack([b, p[rows]], 1), axis=0)
    user_ids, u = np.unique(u_s[new], return_inverse=True)
    coded = Baskets.from_codes(
        user_ids=user_ids,
        order_ids=o_s[new],
        sequence=s_s[new],
        basket_user=u,
        item_ids=np.concatenate([item_ids, ["unused"]]),
        line_basket=pairs[:, 0],
        line_item=pairs[:, 1],
    )
    assert_same(coded, reference)
