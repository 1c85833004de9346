"""The demo experiment's simulated traffic: exposures through personalise, then orders."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.demo.experiment_traffic import (
    CONVERSION,
    outcome_events,
    simulate_experiment_traffic,
    variation_of,
)
from kirana.demo.instacart import load_histories, product

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
HISTORIES = load_histories()


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(0, len(HISTORIES) - 1),
    variation=st.sampled_from(sorted(CONVERSION)),
    seed=st.integers(0, 2**32),
)
def test_an_outcome_is_the_users_last_basket_priced_from_the_catalogue(
    index: int, variation: str, seed: int
) -> None:
    history = HISTORIES[index]
    user_id = str(history.user_id)
    events = outcome_events(user_id, history, variation, seed=seed, now=NOW)
    assert events == outcome_events(user_id, history, variation, seed=seed, now=NOW)
    assert len(events) <= 1
    for event in events:
        props = event["properties"]
        assert event["event"] == "Order Completed" and event["userId"] == user_id
        assert [p["product_id"] for p in props["products"]] == [
            str(pid) for pid in history.orders[-1].product_ids
        ]
        cents = sum(
            product(int(p["product_id"])).price_cents * p["quantity"] for p in props["products"]
        )
        assert props["total"] == props["revenue"] == cents / 100
        assert event["timestamp"] == "2026-12-08T12:00:00.000Z"


def test_each_variation_converts_at_its_simulated_rate() -> None:
    for variation, rate in CONVERSION.items():
        orders = sum(
            len(outcome_events(str(h.user_id), h, variation, seed=seed, now=NOW))
            for seed in range(4)
            for h in HISTORIES
        )
        assert abs(orders / (4 * len(HISTORIES)) - rate) < 0.03, variation


def test_users_are_counted_per_variation_and_only_assigned_users_order() -> None:
    answers = {
        "1": {"experiments": [{"experiment_id": "home-ranking", "variation_id": "bandit"}]},
        "2": {"experiments": [{"experiment_id": "other", "variation_id": "x"}]},
        "3": {"experiments": [{"experiment_id": "home-ranking", "variation_id": "popular"}]},
    }
    users = [(str(h.user_id), h) for h in HISTORIES[:3]]
    exposed, events = simulate_experiment_traffic(users, answers.__getitem__, "home-ranking")
    assert exposed == {"bandit": 1, "popular": 1}
    assert {e["userId"] for e in events} <= {"1", "3"}
    assert variation_of(answers["2"], "home-ranking") is None
