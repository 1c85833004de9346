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
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from kirana.destinations.extension import delivery_store
from kirana.privacy.participants import Participant, People, vacuum_sqlite

if TYPE_CHECKING:
    from kirana.destinations.store import DeliveryStore
    from kirana.runtime import Platform

ERASED = "[erased]"


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def _mentions(values: set[str]) -> Callable[[bytes | str | None], int]:
    """A SQL function: does a JSON payload hold one of ``values`` as a string anywhere?

    One pass over the queue for a whole batch of people (an ``instr`` per value would
    scan the table once per identifier); text that is not JSON is searched as text."""
    quoted = [json.dumps(v) for v in values]

    def mentions(data: bytes | str | None) -> int:
        if data is None:
            return 0
        try:
            return int(any(s in values for s in _json_strings(msgspec.json.decode(data))))
        except (msgspec.DecodeError, TypeError, UnicodeDecodeError, RecursionError):
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            return int(any(q in text for q in quoted))

    return mentions


def _scrubber(values: set[str]) -> Callable[[str | None], str | None]:
    """A SQL function replacing every quoted identifier in an error text by ``[erased]``."""
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
    return lambda text: None if text is None else pattern.sub(ERASED, text)


def erase_person(store: DeliveryStore, values: list[str]) -> dict[str, int]:
    """Remove the people's records and scrub error texts; returns counts."""
    if not values:
        return {"records": 0, "errors_scrubbed": 0}
    removed = store.erase(values)
    wanted = set(values)
    conn = store.conn()
    conn.create_function("kirana_mentions", 1, _mentions(wanted), deterministic=True)
    conn.create_function("kirana_scrub", 1, _scrubber(wanted), deterministic=True)
    errors = 0
    with store.transaction() as tx:
        mentioned = tx.execute("DELETE FROM queue WHERE kirana_mentions(data)").rowcount
        for table in ("queue", "destination_health"):
            errors += tx.execute(
                f"UPDATE {table} SET last_error = kirana_scrub(last_error) "
                "WHERE last_error IS NOT NULL AND kirana_scrub(last_error) != last_error"
            ).rowcount
    vacuum_sqlite(store.conn())
    return {"records": removed + mentioned, "errors_scrubbed": errors}


def participant(platform: Platform) -> Participant:
    def erase(people: People) -> dict[str, int]:
        return erase_person(delivery_store(platform), people.values)

    return erase
