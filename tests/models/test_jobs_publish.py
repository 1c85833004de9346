"""Publishing predictions to profiles: identity mapping, merges, clashes with definitions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from kirana.identity.sqlite_store import SQLiteProfileStore
from kirana.models.jobs.engine import BUYING_PATTERNS_SCHEMA
from kirana.models.jobs.publish import PublishError, publish_traits


def _prediction(user: str, orders: int, p_alive: float) -> dict:
    return {
        "user_id": user,
        "orders": orders,
        "last_order_date": date(2025, 12, orders),
        "p_alive": p_alive,
        "expected_orders": 1.5,
        "p_order": 0.7,
        "expected_spend": None if orders == 1 else 42.123456789,
        "expected_next_order_date": date(2026, 1, 5),
    }


@pytest.fixture
def store(tmp_path: Path):
    store = SQLiteProfileStore(tmp_path / "profiles.sqlite")
    with store.transaction():
        store.assign(
            {
                ("user_id", "u1"): "p1",
                ("anonymous_id", "a1"): "p1",  # u1's device: one person, two lake ids
                ("anonymous_id", "a2"): "p2",  # never logged in
                ("user_id", "u3"): "p3",
            }
        )
    yield store
    store.close()


def test_predictions_land_on_canonical_profiles(store) -> None:
    table = pa.Table.from_pylist(
        [
            _prediction("u1", 9, 0.9),
            _prediction("a1", 2, 0.1),  # the shorter history of the same profile loses
            _prediction("a2", 1, 0.5),
            _prediction("stranger", 3, 0.3),  # no profile holds this id
        ],
        schema=BUYING_PATTERNS_SCHEMA,
    )
    stats = publish_traits(store, table, horizon_days=14)
    assert stats == {"profiles": 2, "unmatched": 1}
    assert store.computed_values("p1") == {
        "expected_next_order_date": "2026-01-05",
        "expected_spend": 42.123457,
        "p_alive": 0.9,
        "p_order_14d": 0.7,
        "predicted_orders_14d": 1.5,
    }
    assert "expected_spend" not in store.computed_values("p2")  # no spend model for one order
    assert store.computed_values("p3") == {}

    # the next run replaces every profile's values, also of customers no longer predicted
    publish_traits(store, table.slice(2, 1), horizon_days=14)
    assert store.computed_values("p1") == {}
    assert store.computed_values("p2")["p_alive"] == 0.5


def test_a_definition_with_a_prediction_name_is_refused(store) -> None:
    store.save_definition("computed_trait", "p_alive", {"aggregation": "count"})
    table = pa.Table.from_pylist([_prediction("u1", 3, 0.9)], schema=BUYING_PATTERNS_SCHEMA)
    with pytest.raises(PublishError, match=r"\['p_alive'\].*DELETE /v1/computed-traits"):
        publish_traits(store, table, horizon_days=30)
    assert store.computed_values("p1") == {}
