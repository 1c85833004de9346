"""Erasing one person reaches nobody else, even through an identifier they shared.

A shared tablet's ``device_id`` and cookie (``anonymousId``) stay with its first customer
(identity rules), so they are alice's identities; erasing alice must not redact, delete or
suppress Bob's events that carry them (log, lake), because their strongest identifier
(Bob's ``userId``) is not hers. Found by
review with this very scenario (issue 15, part 6 follow-up).
"""

from __future__ import annotations

import json

from tests.conftest import RunningKirana
from tests.privacy.test_erasure import send

TABLET = "tablet-shared-01"
TABLET_ANON = "anon-tablet-01"  # the tablet's browser cookie, also shared
ON_TABLET = {"device": {"id": TABLET}}
ALICE_EMAIL = "alice-tablet@example.com"


def on_tablet(user: str, **fields: object) -> dict:
    """An event of ``user`` signed in on the shared tablet."""
    return {"userId": user, "anonymousId": TABLET_ANON, "context": ON_TABLET, **fields}


def test_erasing_a_shared_tablets_first_customer_leaves_the_next_one_whole(
    kirana: RunningKirana,
) -> None:
    alice_traits = {"name": "A", "email": ALICE_EMAIL}
    send(kirana, [on_tablet("alice-x", type="identify", traits=alice_traits)])
    send(kirana, [on_tablet("alice-x", type="track", event="Alice Before")])
    send(kirana, [on_tablet("alice-x", type="track", event="Alice Bad", properties="text")])
    kirana.drain()
    send(kirana, [on_tablet("bob-y", type="identify", traits={"name": "B"})])
    send(kirana, [on_tablet("bob-y", type="track", event="Bob Before")])
    send(kirana, [on_tablet("bob-y", type="track", event="Bob Bad", properties="text")])
    kirana.drain()
    assert len(kirana.platform.store.list_quarantined()) == 2
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
    assert {("device_id", TABLET), ("anonymous_id", TABLET_ANON)} <= identities  # her tablet
    assert report["log_records_redacted"] == 3  # alice's three events, none of Bob's
    assert report["quarantine_rows_deleted"] == 1  # her bad event; his stays, tablet and all
    (left,) = kirana.platform.store.list_quarantined()
    assert json.loads(left.raw)["userId"] == "bob-y" and TABLET in left.raw

    after = send(
        kirana,
        [
            on_tablet("bob-y", type="track", event="Bob After"),
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
    assert len(bobs) == 4  # before and after the erasure, valid or not, none redacted
    assert not [r for r in records if b"alice" in r.payload]
