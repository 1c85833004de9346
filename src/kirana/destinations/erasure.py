"""Erasure of a person from the delivery store (listed in ``runtime.ERASURE``).

Queued, delivered (kept for the dedupe window) and dead-lettered records go when their
``user`` or ``key`` is one of the person's identifiers (`DeliveryStore.erase`), or when
their payload holds one as a JSON string anywhere (an e-mail in a sync row keyed by
something else). Error texts that quote an identifier are blanked rather than deleted:
they describe a destination's health, not the person. The file is then rebuilt, since the
store deletes without ``secure_delete``.

Records already delivered live on in the destination (a webhook's receiver, a table, a
file drop's folder): erasure there belongs to that system. The report counts what Kirana
removed so an operator can see which erasures reached queues.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from kirana.destinations.extension import delivery_store
from kirana.privacy.participants import Participant, People, vacuum_sqlite

if TYPE_CHECKING:
    from kirana.destinations.store import DeliveryStore
    from kirana.runtime import Platform

ERASED = "[erased]"


def erase_person(store: DeliveryStore, values: list[str]) -> dict[str, int]:
    """Remove the person's records and scrub error texts; returns counts."""
    removed = store.erase(values)
    mentioned = errors = 0
    with store.transaction() as conn:
        for value in values:
            needle = json.dumps(value).encode()
            mentioned += conn.execute(
                "DELETE FROM queue WHERE instr(data, ?) > 0", (needle,)
            ).rowcount
            for table in ("queue", "destination_health"):
                errors += conn.execute(
                    f"UPDATE {table} SET last_error = replace(last_error, ?, ?) "
                    "WHERE instr(last_error, ?) > 0",
                    (value, ERASED, value),
                ).rowcount
    vacuum_sqlite(store.conn())
    return {"records": removed + mentioned, "errors_scrubbed": errors}


def participant(platform: Platform) -> Participant:
    def erase(people: People) -> dict[str, int]:
        return erase_person(delivery_store(platform), people.values)

    return erase
