"""Identity resolution contract tests, run against every reachable profile store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kirana.identity.engine import IdentityResolver
from kirana.identity.store import SQLProfileStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def ev(n: int, type_: str = "track", **fields) -> dict:
    return {
        "type": type_,
        "messageId": f"m{n}",
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        **({"event": "E"} if type_ == "track" else {}),
        **fields,
    }


def apply_all(store: SQLProfileStore, events: list[dict]) -> IdentityResolver:
    resolver = IdentityResolver(store)
    with store.transaction():
        for event in events:
            resolver.apply_event(event)
    return resolver


def test_anonymous_visitor_becomes_the_identified_customer(profile_store: SQLProfileStore) -> None:
    apply_all(
        profile_store,
        [
            ev(1, anonymousId="anon-1"),
            ev(
                2,
                "identify",
                anonymousId="anon-1",
                userId="u1",
                traits={"email": "A@x.io", "plan": "free"},
            ),
            ev(3, anonymousId="anon-2", context={"traits": {"email": "a@x.io"}}),
        ],
    )
    by_user = profile_store.profile(("user_id", "u1"))
    assert by_user is not None
    assert set(by_user.identities) == {
        ("user_id", "u1"),
        ("anonymous_id", "anon-1"),
        ("anonymous_id", "anon-2"),
        ("email", "a@x.io"),
    }
    assert by_user.traits == {"email": "a@x.io", "plan": "free"}
    for ident in by_user.identities:
        assert profile_store.profile(ident).profile_id == by_user.profile_id
    assert by_user.merged_from, "anon-1's profile was merged into the customer's"


def test_two_customers_sharing_a_device_are_never_merged(profile_store: SQLProfileStore) -> None:
    apply_all(
        profile_store,
        [
            ev(1, "identify", userId="alice", anonymousId="shared-tablet"),
            ev(2, "identify", userId="bob", anonymousId="shared-tablet"),
            ev(3, userId="bob", anonymousId="bobs-phone"),
        ],
    )
    alice = profile_store.profile(("user_id", "alice"))
    bob = profile_store.profile(("user_id", "bob"))
    assert alice.profile_id != bob.profile_id
    # the weaker identifier (the anonymous id) gave way; the first owner keeps the device
    assert ("anonymous_id", "shared-tablet") in alice.identities
    assert set(bob.identities) == {("user_id", "bob"), ("anonymous_id", "bobs-phone")}


def test_junk_identifiers_merge_nobody(profile_store: SQLProfileStore) -> None:
    events = [
        ev(i, "identify", userId=f"user-{i}", anonymousId=junk, traits={"email": junk_email})
        for i, (junk, junk_email) in enumerate(
            [("null", ""), ("anonymous", "null"), ("-1", "undefined"), ("00000000", "0")]
        )
    ]
    apply_all(profile_store, events)
    ids = {profile_store.profile(("user_id", f"user-{i}")).profile_id for i in range(4)}
    assert len(ids) == 4
    assert profile_store.profile(("anonymous_id", "null")) is None


def test_traits_are_last_write_wins_by_event_time_not_arrival(
    profile_store: SQLProfileStore,
) -> None:
    apply_all(
        profile_store,
        [
            ev(5, "identify", userId="u", traits={"plan": "gold", "city": "Pune"}),
            ev(
                1, "identify", userId="u", traits={"plan": "free", "age": 30}
            ),  # older, arrives later
        ],
    )
    assert profile_store.profile(("user_id", "u")).traits == {
        "plan": "gold",
        "city": "Pune",
        "age": 30,
    }


def test_email_limit_lets_the_weaker_identifier_give_way(profile_store: SQLProfileStore) -> None:
    # the same email claimed by two user ids: the email stays with the first
    apply_all(
        profile_store,
        [
            ev(1, "identify", userId="u1", traits={"email": "same@x.io"}),
            ev(2, "identify", userId="u2", traits={"email": "same@x.io"}),
        ],
    )
    u1 = profile_store.profile(("user_id", "u1"))
    u2 = profile_store.profile(("user_id", "u2"))
    assert ("email", "same@x.io") in u1.identities
    assert ("email", "same@x.io") not in u2.identities


def test_alias_links_previous_anonymous_id(profile_store: SQLProfileStore) -> None:
    apply_all(
        profile_store,
        [
            ev(1, anonymousId="a-old"),
            ev(2, "alias", userId="u9", previousId="a-old"),
        ],
    )
    assert (
        profile_store.profile(("anonymous_id", "a-old")).profile_id
        == profile_store.profile(("user_id", "u9")).profile_id
    )


def test_replaying_the_same_events_changes_nothing(profile_store: SQLProfileStore) -> None:
    events = [
        ev(1, anonymousId="a1"),
        ev(2, "identify", anonymousId="a1", userId="u1"),
        ev(3, "identify", anonymousId="a2", userId="u1", traits={"x": 1}),
    ]
    apply_all(profile_store, events)
    before = profile_store.profile(("user_id", "u1"))
    resolver = apply_all(profile_store, events)
    assert resolver.recomputations == 0
    assert profile_store.profile(("user_id", "u1")) == before
