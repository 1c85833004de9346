"""Which event-log records concern the people being erased.

An accepted event (``E``) concerns them when any identifier the identity rules find in it
(``identity.rules.identifiers``: user and anonymous ids, an alias's previous id, e-mail,
phone and configured trait ids in traits or ``context.traits``, the device id) has one of
their values, whatever its type. A quarantined event (``Q``) was refused, maybe before its
identifiers could be read, so it concerns them when its raw text is readable and names them
that way, or when the text quotes one of their values anywhere.

Decoding each record and intersecting sets costs the same for one person as for a batch of
thousands, so a batch erasure reads the log once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from kirana.eventlog.records import EVENT, QUARANTINE
from kirana.identity.rules import Identifier, IdentityRules, identifiers
from kirana.privacy.suppression import readable_event


def log_matcher(identities: Iterable[Identifier], rules: IdentityRules) -> Callable[[bytes], bool]:
    """A predicate over log payloads: does this record concern one of the people?"""
    values = {v for _, v in identities}
    if not values:
        return lambda payload: False
    # a value as JSON writes it in the record, and inside ``raw`` (itself a JSON string)
    quoted = {json.dumps(v)[1:-1] for v in values} | {
        json.dumps(json.dumps(v))[3:-3] for v in values
    }
    mentions = re.compile("|".join(re.escape(q) for q in sorted(quoted)).encode())

    def names_them(event: dict) -> bool:
        found, _ = identifiers(event, rules)
        return any(v in values for _, v in found)

    def matches(payload: bytes) -> bool:
        kind = payload[:1]
        if kind == EVENT:
            return names_them(dict(readable_event(payload[1:])))
        if kind == QUARANTINE:
            raw = readable_event(payload[1:]).get("raw")
            if isinstance(raw, str) and names_them(dict(readable_event(raw))):
                return True
            return mentions.search(payload) is not None
        return False

    return matches
