"""Which event-log records concern the people being erased.

An accepted event (``E``) concerns them when it is theirs: when its strongest identifier
by the identity rules' priority (``privacy.suppression.event_owner``, the identifier the
identity engine resolves the event by) is one of their identities. Someone else's event
that merely carries one of their identifiers (a shared device's id, an alias's previous
id) is not redacted. A quarantined event (``Q``) was refused, maybe before its
identifiers could be read: when its raw text is readable and carries identifiers, the
same rule decides; when it is unreadable or carries none, it concerns them when the text
quotes one of their values anywhere.

Decoding each record and intersecting sets costs the same for one person as for a batch of
thousands, so a batch erasure reads the log once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable

from kirana.eventlog.records import EVENT, QUARANTINE
from kirana.identity.rules import Identifier, IdentityRules
from kirana.privacy.suppression import event_owner, readable_event


def log_matcher(identities: Iterable[Identifier], rules: IdentityRules) -> Callable[[bytes], bool]:
    """A predicate over log payloads: does this record concern one of the people?"""
    people = set(identities)
    values = {v for _, v in people}
    if not values:
        return lambda payload: False
    # a value as JSON writes it in the record, and inside ``raw`` (itself a JSON string)
    quoted = {json.dumps(v)[1:-1] for v in values} | {
        json.dumps(json.dumps(v))[3:-3] for v in values
    }
    mentions = re.compile("|".join(re.escape(q) for q in sorted(quoted)).encode())

    def matches(payload: bytes) -> bool:
        kind = payload[:1]
        if kind == EVENT:
            return event_owner(readable_event(payload[1:]), rules) in people
        if kind == QUARANTINE:
            raw = readable_event(payload[1:]).get("raw")
            owner = event_owner(readable_event(raw), rules) if isinstance(raw, str) else None
            if owner is not None:
                return owner in people
            return mentions.search(payload) is not None
        return False

    return matches
