"""The README's first command: `kirana serve --demo` ends with Kirana running on demo data."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from kirana.demo.instacart import load_histories
from kirana.lake.catalog import connect
from tests.e2e.test_crash import Server

pytestmark = pytest.mark.slow


def test_serve_with_demo_loads_real_orders_through_the_api(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir, extra=["--demo", "--demo-users", "8"])
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _loaded(data_dir):
            time.sleep(0.5)
        assert _loaded(data_dir), "the demo did not finish loading"
        assert httpx.get(f"{server.url}/health").status_code == 200, "server kept running"
    finally:
        server.stop()
    histories = load_histories()[:8]
    lake = connect(data_dir / "lake")
    orders = lake.sql(
        "SELECT user_id, properties->>'$.order_id' AS order_id, "
        "json_array_length(properties->'$.products') AS n "
        "FROM events WHERE event = 'Order Completed'"
        # the orders the demo experiment's simulated traffic adds (kirana.demo.experiment_traffic)
        " AND NOT starts_with(properties->>'$.order_id', 'demo-experiment-')"
    ).fetchall()
    expected = {
        (str(h.user_id), str(o.order_id), len(o.product_ids)) for h in histories for o in h.orders
    }
    assert set(orders) == expected
    [(dupes,)] = lake.sql("SELECT count(*) - count(DISTINCT message_id) FROM events").fetchall()
    assert dupes == 0


def _loaded(data_dir: Path) -> bool:
    from kirana.store.sqlite import SQLiteStore

    store = SQLiteStore(data_dir / "state" / "kirana.sqlite")
    try:
        return store.get_setting("demo.loaded") is not None
    finally:
        store.close()
