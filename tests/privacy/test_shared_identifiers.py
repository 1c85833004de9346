"""Erasing one person reaches nobody else, even through an identifier they shared.

A shared tablet's ``device_id`` stays with its first customer (identity rules), so it is
one of alice's identities; erasing alice must not redact, delete or suppress Bob's events
that carry it, because their strongest identifier (Bob's ``userId``) is not hers. Found by
review with this very scenario (issue 15, part 6 follow-up).
"""

from __future__ import annotations

import json

from tests.conftest import RunningKirana
from tests.privacy.test_erasure import send

TABLET = "tablet-shared-01"
ON_TABLET = {"device": {"id": TABLET}}
ALICE_EMAIL = "alice-tablet@example.com"


def test_erasing_a_shared_tablets_first_customer_leaves_the_next_one_whole(
    kirana: RunningKirana,
) -> None:
    send(
        kirana,
        [
            {"type": "identify", "userId": "alice-x", "context": ON_TABLET,
             "traits": {"name": "A", "email": ALICE_EMAIL}},
            {"type": "track", "userId": "alice-x", "event": "Alice Before", "context": ON_TABLET},
        ],
    )  # fmt: skip
    kirana.drain()
    send(
        kirana,
        [
            {"type": "identify", "userId": "bob-y", "context": ON_TABLET, "traits": {"name": "B"}},
            {"type": "track", "userId": "bob-y", "event": "Bob Before", "context": ON_TABLET},
        ],
    )
    kirana.drain()
    with kirana.client() as http:
        erased = http.post(
            "/v1/privacy/erasures",
            json={"identifier": "alice-x", "type": "user_id"},
            headers={"Authorization": f"Bearer {kirana.admin_token}"},
        )
    assert erased.status_code == 200, erased.text
    report = erased.json()
    identities = {(i["type"], i["value"]) for i in report["identities"]}
    assert ("device_id", TABLET) in identities  # the tablet went with its first customer
    assert report["log_records_redacted"] == 2  # alice's two events, none of Bob's

    after = send(
        kirana,
        [
            {"type": "track", "userId": "bob-y", "event": "Bob After", "context": ON_TABLET},
            # no userId: the strongest identifier is alice's erased e-mail, so it is hers
            {"type": "track", "anonymousId": "anon-new-1", "event": "Alice Again",
             "context": {**ON_TABLET, "traits": {"email": ALICE_EMAIL}}},
            # only the tablet: its strongest identifier is the erased device id
            {"type": "track", "anonymousId": "anon-new-2", "event": "Tablet Only",
             "context": ON_TABLET},
        ],
    )  # fmt: skip
    assert after["accepted"] == 1 and after["suppressed"] == 2, after
    kirana.drain()
    bob = kirana.lake("SELECT type, event FROM events WHERE user_id = 'bob-y' ORDER BY event")
    assert bob == [("track", "Bob After"), ("track", "Bob Before"), ("identify", None)]
    assert kirana.lake("SELECT count(*) FROM events WHERE user_id = 'alice-x'") == [(0,)]
    records = kirana.platform.log.read(0, 1000).records
    bobs = [r for r in records if b"bob-y" in r.payload]
    assert len(bobs) == 3  # before and after the erasure, none redacted
    assert all(json.loads(r.payload[1:])["userId"] == "bob-y" for r in bobs)
    assert not [r for r in records if b"alice" in r.payload]
