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
import pyarrow.compute as pc

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


def profile_ids(store: SQLProfileStore, user_ids: list[str]) -> list[str | None]:
    """The canonical profile of each lake customer id (None when the graph does not know it)."""
    identities = store.export_identities()
    lookup: dict[tuple[str, str], str] = dict(
        zip(
            zip(
                identities.column("id_type").to_pylist(),
                identities.column("id_value").to_pylist(),
                strict=True,
            ),
            identities.column("profile_id").to_pylist(),
            strict=True,
        )
    )
    return [lookup.get(("user_id", u)) or lookup.get(("anonymous_id", u)) for u in user_ids]


def publish_traits(store: SQLProfileStore, table: pa.Table, *, horizon_days: int) -> dict[str, int]:
    """Write the predictions as computed traits of the customers' profiles (one transaction)."""
    names = trait_names(horizon_days)
    clash = {d.name for d in store.definitions("computed_trait")} & set(names.values())
    if clash:
        raise PublishError(
            f"computed trait definition(s) {sorted(clash)} use the names of buying-pattern "
            "predictions; rename or delete them (`kirana traits delete NAME`)"
        )
    profiles = profile_ids(store, table.column("user_id").to_pylist())
    mapped = table.append_column("profile_id", pa.array(profiles, pa.string()))
    mapped = mapped.filter(pc.is_valid(mapped.column("profile_id")))
    # the longest history first, so the first row seen per profile is the one kept
    mapped = mapped.sort_by([("orders", "descending"), ("last_order_date", "descending")])
    best: dict[str, dict[str, Any]] = {}
    for row in mapped.to_pylist():
        best.setdefault(row["profile_id"], row)
    with store.transaction():
        for column, name in names.items():
            values = [
                (pid, json.dumps(_value(row[column])))
                for pid, row in best.items()
                if row[column] is not None
            ]
            store.replace_computed_values(name, values, None)
    return {"profiles": len(best), "unmatched": table.num_rows - mapped.num_rows}


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
