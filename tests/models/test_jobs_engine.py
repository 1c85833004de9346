"""The embedded engine on a small demo lake: each job's output checked against the lake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from kirana.config import ModelSettings
from kirana.lake.catalog import connect
from kirana.models.jobs import lake_orders
from kirana.models.jobs.embedded import EmbeddedEngine
from kirana.models.jobs.engine import (
    ASSOCIATIONS_SCHEMA,
    BUYING_PATTERNS_SCHEMA,
    PER_USER_SCHEMA,
    OrdersSource,
    metrics_of,
)
from tests.models.jobs_lake import demo_events, load_lake

LINES = """
SELECT DISTINCT user_id, properties->>'$.order_id' AS order_id,
       unnest(CAST(json_extract(properties, '$.products') AS JSON[]))->>'$.product_id' AS item
FROM events WHERE event = 'Order Completed'
"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("lake")
    load_lake(data_dir, demo_events(30))
    return data_dir / "lake"


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine(ModelSettings(evaluate=False))


def _bought(lake: Path) -> set[tuple[str, str]]:
    return {(u, i) for u, _, i in connect(lake).sql(LINES).fetchall()}


def _lists(table) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in table.sort_by([("user_id", "ascending"), ("rank", "ascending")]).to_pylist():
        out.setdefault(row["user_id"], []).append(row["item_id"])
    return out


def test_buy_again_ranks_only_items_the_user_bought(lake, engine) -> None:
    table = engine.buy_again(OrdersSource(lake), k=7)
    assert table.schema.equals(PER_USER_SCHEMA)
    bought = _bought(lake)
    lists = _lists(table)
    assert len(lists) == 30
    assert all((u, i) in bought for u, items in lists.items() for i in items)
    assert all(len(items) == 7 for items in lists.values())  # every demo user bought > 7
    ranks = table.sort_by([("user_id", "ascending"), ("rank", "ascending")]).to_pylist()
    first = [r for r in ranks if r["user_id"] == ranks[0]["user_id"]]
    assert [r["rank"] for r in first] == list(range(1, 8))
    assert [r["score"] for r in first] == sorted((r["score"] for r in first), reverse=True)


def test_recommended_for_you_only_has_new_items(lake, engine) -> None:
    table = engine.recommended_for_you(OrdersSource(lake), k=5)
    bought = _bought(lake)
    lists = _lists(table)
    assert len(lists) == 30 and all(len(v) == 5 for v in lists.values())
    assert not any((u, i) in bought for u, items in lists.items() for i in items)


def test_associations_match_counts_in_the_lake(lake, engine) -> None:
    table = engine.associations(OrdersSource(lake), min_support=0.0, min_confidence=0.0, k=3)
    assert table.schema.equals(ASSOCIATIONS_SCHEMA)
    conn = connect(lake)
    conn.execute(f"CREATE TABLE lines AS SELECT DISTINCT order_id, item FROM ({LINES})")
    [(n_orders,)] = conn.sql("SELECT count(DISTINCT order_id) FROM lines").fetchall()
    top = table.sort_by([("lift", "descending")]).slice(0, 5).to_pylist()
    for rule in top:
        [(n_i, n_j, n_ij)] = conn.execute(
            "SELECT count(*) FILTER (WHERE item = $i), count(*) FILTER (WHERE item = $j), "
            "(SELECT count(*) FROM lines a JOIN lines b USING (order_id) "
            " WHERE a.item = $i AND b.item = $j) FROM lines",
            {"i": rule["item_id"], "j": rule["related_item_id"]},
        ).fetchall()
        assert n_ij >= ModelSettings().min_pair_orders
        assert rule["support"] == pytest.approx(n_ij / n_orders)
        assert rule["confidence"] == pytest.approx(n_ij / n_i)
        assert rule["lift"] == pytest.approx(n_ij * n_orders / (n_i * n_j))
    per_item = _lists(table.rename_columns(["user_id", "item_id", "s", "c", "l", "rank"]))
    assert max(len(v) for v in per_item.values()) == 3
    by_item: dict[str, list[tuple[int, float]]] = {}
    for rule in table.to_pylist():
        by_item.setdefault(rule["item_id"], []).append((rule["rank"], rule["lift"]))
    for rules in by_item.values():  # ranks 1..n per item, best lift first
        rules.sort()
        assert [r for r, _ in rules] == list(range(1, len(rules) + 1))
        assert [lift for _, lift in rules] == sorted((lift for _, lift in rules), reverse=True)


def test_popular_is_the_most_ordered_items(lake, engine) -> None:
    table = engine.popular(OrdersSource(lake), k=3)
    expected = (
        connect(lake)
        .sql(
            f"SELECT item, count(DISTINCT order_id) AS n FROM ({LINES}) GROUP BY item "
            "ORDER BY n DESC, item LIMIT 3"
        )
        .fetchall()
    )
    rows = table.to_pylist()
    assert {r["user_id"] for r in rows} == {"*"}
    assert [r["score"] for r in rows] == [float(n) for _, n in expected]


def test_buying_patterns_one_row_per_customer(lake, engine) -> None:
    table = engine.buying_patterns(OrdersSource(lake), horizon_days=30)
    assert table.schema.equals(BUYING_PATTERNS_SCHEMA)
    days = dict(
        connect(lake)
        .sql(
            "SELECT user_id, count(DISTINCT CAST(timestamp AS DATE)) FROM events "
            "WHERE event = 'Order Completed' GROUP BY 1"
        )
        .fetchall()
    )
    rows = table.to_pylist()
    assert {r["user_id"]: r["orders"] for r in rows} == days
    for r in rows:
        assert 0 <= r["p_alive"] <= 1 and 0 <= r["p_order"] <= 1
        assert r["expected_orders"] >= 0 and r["expected_spend"] > 0
        assert r["expected_next_order_date"] > r["last_order_date"]
    assert metrics_of(table)["bgnbd"].keys() == {"r", "alpha", "a", "b"}


def test_holdout_metrics_are_attached(lake) -> None:
    engine = EmbeddedEngine(ModelSettings(evaluate=True))
    table = engine.buy_again(OrdersSource(lake), k=10)
    metrics = metrics_of(table)
    assert metrics["holdout_users"] == 30  # every demo user has two orders or more
    for key in ("holdout_recall@10", "holdout_ndcg@10", "baseline_ptopfreq_recall@10"):
        assert 0 < metrics[key] <= 1
    assert metrics["rows"] == table.num_rows


# -- reading orders -----------------------------------------------------------------------------
def _order(message: str, user: str | None, order: str, day: int, **props) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": message,
        "userId": user,
        "anonymousId": None if user else "anon-1",
        "timestamp": datetime(2025, 6, day, tzinfo=UTC).isoformat(),
        "properties": {"order_id": order, **props},
    }


def test_amounts_orders_and_versions(tmp_path: Path) -> None:
    products = [{"product_id": "a", "price": 2.5, "quantity": 2}, {"product_id": "b", "price": 1}]
    load_lake(
        tmp_path,
        [
            _order("m1", "u1", "o1", 1, total=10.0, revenue=8.0, products=products),
            _order("m2", "u1", "o2", 2, revenue=8.0, products=products),
            _order("m3", "u1", "o3", 3, products=products),
            _order("m4", "u1", "o3", 4, products=products),  # the same order sent again
            _order("m5", None, "o4", 5, total=-3, products=[]),  # anonymous; no products
        ],
    )
    first_version = DeltaTable(tmp_path / "lake" / "events").version()
    load_lake(tmp_path, [_order("m6", "u2", "o5", 6, total=1.0, products=products)])
    source = OrdersSource(tmp_path / "lake", version=first_version)
    tx = lake_orders.transactions(lake_orders.connect(source)).to_pylist()
    amounts = {(t["customer_id"], t["order_id"]): t["amount"] for t in tx}
    assert amounts == {
        ("u1", "o1"): 10.0,  # total
        ("u1", "o2"): 8.0,  # else revenue
        ("u1", "o3"): 6.0,  # else price x quantity (2.5 x 2 + 1 x 1), counted once
        ("anon-1", "o4"): 0.0,  # negative totals are not spend
    }
    lines = lake_orders.order_lines(lake_orders.connect(source))
    assert lines.num_rows == 6 and set(lines.column("user_id").to_pylist()) == {"u1"}
    latest = lake_orders.transactions(lake_orders.connect(OrdersSource(tmp_path / "lake")))
    assert ("u2", "o5") in {(t["customer_id"], t["order_id"]) for t in latest.to_pylist()}


def test_no_lake_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(lake_orders.NoOrders, match="load events first"):
        lake_orders.connect(OrdersSource(tmp_path / "lake"))


def test_replicated_order_tables_join_the_events(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    load_lake(tmp_path, [_order("m1", "u1", "o1", 1, total=10.0, products=[{"product_id": "a"}])])
    shop = pa.table(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "order_id": ["o1", "o9", "o9", "o8"],  # o1 is also an event: the event wins
            "order_time": pa.array(
                [datetime(2025, 6, d, tzinfo=UTC) for d in (1, 9, 9, 8)], pa.timestamp("us", "UTC")
            ),
            "product_id": [7, 8, 9, 8],
            "amount": [99.0, 1.5, 2.0, 4.0],
        }
    )
    write_deltalake(tmp_path / "lake" / "shop_order_lines", shop)
    source = OrdersSource(tmp_path / "lake", extra_tables=("shop_order_lines",))
    conn = lake_orders.connect(source)
    tx = {
        (t["customer_id"], t["order_id"]): t["amount"]
        for t in lake_orders.transactions(conn).to_pylist()
    }
    assert tx == {("u1", "o1"): 10.0, ("u1", "o9"): 3.5, ("u2", "o8"): 4.0}
    lines = {(r["order_id"], r["product_id"]) for r in lake_orders.order_lines(conn).to_pylist()}
    assert lines == {("o1", "a"), ("o9", "8"), ("o9", "9"), ("o8", "8")}
    with pytest.raises(lake_orders.NoOrders, match="extra order table 'nope'"):
        lake_orders.connect(OrdersSource(tmp_path / "lake", extra_tables=("nope",)))
