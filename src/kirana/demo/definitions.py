"""The demo's computed traits and audiences: what a grocer would define on day one."""

from __future__ import annotations

from typing import Any

TRAITS: dict[str, dict[str, Any]] = {
    "orders_30d": {"aggregation": "count", "event": "Order Completed", "window_days": 30},
    "total_spend": {"aggregation": "sum", "event": "Order Completed", "property": "total"},
    "favourite_department": {
        "aggregation": "most_frequent",
        "event": "Order Completed",
        "property": "products[].category",
    },
    "days_since_last_order": {"aggregation": "days_since_last", "event": "Order Completed"},
    "distinct_products_bought": {
        "aggregation": "distinct_count",
        "event": "Order Completed",
        "property": "products[].product_id",
    },
}

AUDIENCES: dict[str, dict[str, Any]] = {
    "loyal": {
        "description": "At least 3 orders in the last 30 days",
        "conditions": {"event": "Order Completed", "at_least": 3, "within_days": 30},
    },
    "cart_abandoners": {
        "description": "Added to cart but did not order within 24 hours (last 7 days)",
        "conditions": {
            "event": "Product Added",
            "not_followed_by": "Order Completed",
            "within_hours": 24,
            "lookback_days": 7,
        },
    },
    "lapsed": {
        "description": "No order for more than 30 days",
        "conditions": {"computed_trait": "days_since_last_order", "op": "gt", "value": 30},
    },
    "produce_lovers": {
        "description": "Produce is their favourite department",
        "conditions": {"computed_trait": "favourite_department", "op": "eq", "value": "produce"},
    },
    "big_spenders": {
        "description": "Top spenders, by SQL",
        "sql": "SELECT profile_id FROM computed_traits WHERE name = 'total_spend' "
        "AND TRY_CAST(value AS DOUBLE) >= 1000",
    },
}


def install(store: Any) -> None:
    """Save the demo definitions (validated like any other)."""
    from kirana.profiles import segments_service

    for name, body in TRAITS.items():
        segments_service.save(store, "computed_trait", name, body)
    for name, body in AUDIENCES.items():
        segments_service.save(store, "audience", name, body)
