"""Simulated traffic for the demo experiment, so its report shows a result on the first run.

The demo's events all happened before ``home-ranking`` started, and an experiment counts
only what follows a user's first exposure, so without this step the report says "no
exposures yet" until real traffic arrives. Here every demo user opens the home feed through
``GET /v1/personalize`` (the server assigns a variation and logs the exposure, exactly as for
an app) and then, with a probability that depends on the variation, orders again: the basket
of their last Instacart order, sent through ``/v1/batch``.

The effect is **simulated** (``CONVERSION`` below, bandit 30 % vs popular 24 %), and the
demo says so when it prints the step. Events are derived from the seed and user id only
(messageIds included), so a replay is deduplicated by the lake.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kirana.demo.instacart import UserHistory, product

#: The simulated probability that a user orders after seeing the home feed, per variation.
CONVERSION: dict[str, float] = {"bandit": 0.30, "popular": 0.24}
_NAMESPACE = uuid.UUID("0b7b2f4e-56a1-5d4c-9a0e-6c1f0d2b9e17")

Personalise = Callable[[str], dict[str, Any]]


def variation_of(answer: dict[str, Any], experiment: str) -> str | None:
    """The variation ``experiment`` gave in a personalise answer (None: not in it)."""
    for entry in answer.get("experiments") or ():
        if entry.get("experiment_id") == experiment:
            return entry.get("variation_id")
    return None


def outcome_events(
    user_id: str, history: UserHistory, variation: str, *, seed: int, now: datetime
) -> list[dict[str, Any]]:
    """The events ``user_id`` sends after the exposure: an order or nothing (pure)."""
    digest = hashlib.blake2b(f"{seed}:{user_id}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    if not history.orders or rng.random() >= CONVERSION.get(variation, 0.0):
        return []
    lines = [(pid, rng.choice((1, 1, 1, 2))) for pid in history.orders[-1].product_ids]
    products = [
        {
            "product_id": str(pid),
            "sku": product(pid).sku,
            "name": product(pid).name,
            "category": product(pid).department,
            "price": product(pid).price,
            "quantity": qty,
        }
        for pid, qty in lines
    ]
    total = sum(product(pid).price_cents * qty for pid, qty in lines) / 100
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": user_id,
            "messageId": str(uuid.uuid5(_NAMESPACE, f"{seed}:{user_id}:order")),
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "properties": {
                "order_id": f"demo-experiment-{user_id}",
                "total": total,
                "revenue": total,
                "currency": "USD",
                "products": products,
            },
        }
    ]


def simulate_experiment_traffic(
    users: Iterable[tuple[str, UserHistory]],
    personalise: Personalise,
    experiment: str,
    *,
    seed: int = 0,
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Open the home feed for every user; (users per variation, the outcome events)."""
    exposed: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    for user_id, history in users:
        variation = variation_of(personalise(user_id), experiment)
        if variation is None:
            continue
        exposed[variation] = exposed.get(variation, 0) + 1
        events += outcome_events(user_id, history, variation, seed=seed, now=datetime.now(UTC))
    return exposed, events
