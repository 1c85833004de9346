"""Publishing job outputs: recommendation lists to serving, predictions to profiles.

* Recommendation tables become lists in the `ServingStore` (one atomic swap per widget).
  Keys are the lake's user ids (user id, else anonymous id), item ids, or ``"*"``, which is
  what the personalise API looks up.
* Buying-pattern predictions become *computed traits* on the canonical profile, written
  through the profile store in one transaction, so ``GET /v1/profiles/{id}`` shows them under
  ``computed_traits`` and audiences can use them like any computed trait. The segment
  refresher only replaces the traits it has definitions for, so these survive its runs; a
  computed-trait definition with the same name would not, and is refused here. (A reverse-ETL
  sync is the other way to land them; this direct write needs no destination.)

A lake customer id maps to a profile through the identity graph: ``('user_id', id)`` first,
else ``('anonymous_id', id)``. When several lake ids land on one profile (orders placed
before and after a merge), the prediction from the longest history wins. Identifiers erased
by the privacy tools (suppressed) are never published.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kirana.identity.store_segments import identifier_digest

if TYPE_CHECKING:
    from kirana.identity.store import SQLProfileStore
    from kirana.serving.store import ServingStore


class PublishError(RuntimeError):
    """An output cannot be published as it is (the message says what to change)."""


def _not_suppressed(keys: np.ndarray, suppressed: set[tuple[str, str]]) -> np.ndarray:
    if not suppressed:
        return np.ones(len(keys), bool)
    gone = {d for _, d in suppressed}
    return np.array([identifier_digest(str(k)) not in gone for k in keys], bool)


def publish_lists(
    serving: ServingStore,
    widget: str,
    table: pa.Table,
    *,
    key: str,
    item: str,
    score: str,
    version: str,
    suppressed: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> dict[str, int]:
    """Replace ``widget``'s lists with ``table``'s rows grouped by ``key``, by ``rank``."""
    ordered = table.sort_by([(key, "ascending"), ("rank", "ascending")])
    keys = ordered.column(key).to_numpy(zero_copy_only=False)
    items = ordered.column(item).to_pylist()
    scores = ordered.column(score).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[len(keys) > 0], keys[1:] != keys[:-1]]))
    ends = np.append(starts[1:], len(keys))[: len(starts)]
    keep = _not_suppressed(keys[starts], suppressed) if key == "user_id" else None

    def rows():
        for n, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            if keep is None or keep[n]:
                yield str(keys[s]), list(zip(items[s:e], scores[s:e].tolist(), strict=True))

    count = serving.replace_recommendations(widget, rows(), version=version)
    return {"keys": count, "rows": table.num_rows}


def trait_names(horizon_days: int) -> dict[str, str]:
    """Output column -> computed-trait name on the profile."""
    return {
        "expected_orders": f"predicted_orders_{horizon_days}d",
        "p_order": f"p_order_{horizon_days}d",
        "p_alive": "p_alive",
        "expected_spend": "expected_spend",
        "expected_next_order_date": "expected_next_order_date",
    }


_MAPPED = """
CREATE TEMP TABLE mapped AS
SELECT p.*, coalesce(u.profile_id, a.profile_id) AS profile_id
FROM predictions p
LEFT JOIN identities u ON u.id_type = 'user_id' AND u.id_value = p.user_id
LEFT JOIN identities a ON a.id_type = 'anonymous_id' AND a.id_value = p.user_id
"""
_BEST = """
SELECT * FROM mapped WHERE profile_id IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY profile_id ORDER BY orders DESC, last_order_date DESC, user_id) = 1
"""


def best_per_profile(store: SQLProfileStore, predictions: pa.Table) -> tuple[pa.Table, int]:
    """(one row per profile with its ``profile_id``, how many customers no profile holds)."""
    import duckdb

    conn = duckdb.connect()
    conn.register("identities", store.export_identities())
    conn.register("predictions", predictions)
    conn.execute(_MAPPED)
    [(unmatched,)] = conn.sql("SELECT count(*) FROM mapped WHERE profile_id IS NULL").fetchall()
    return conn.sql(_BEST).to_arrow_table(), int(unmatched)


def publish_traits(store: SQLProfileStore, table: pa.Table, *, horizon_days: int) -> dict[str, int]:
    """Write the predictions as computed traits of the customers' profiles (one transaction)."""
    names = trait_names(horizon_days)
    clash = {d.name for d in store.definitions("computed_trait")} & set(names.values())
    if clash:
        raise PublishError(
            f"computed trait definition(s) {sorted(clash)} use the names of buying-pattern "
            "predictions; rename or delete them (DELETE /v1/computed-traits/NAME)"
        )
    best, unmatched = best_per_profile(store, table)
    profiles = best.column("profile_id").to_pylist()
    with store.transaction():
        for column, name in names.items():
            values = [
                (pid, json.dumps(_value(v)))
                for pid, v in zip(profiles, best.column(column).to_pylist(), strict=True)
                if v is not None
            ]
            store.replace_computed_values(name, values, None)
    return {"profiles": best.num_rows, "unmatched": unmatched}


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
