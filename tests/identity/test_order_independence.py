"""Property: the same events give the same profiles whatever order they arrive in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.identity.engine import IdentityResolver
from kirana.identity.graph import event_links, resolve
from kirana.identity.rules import IdentityRules, observe
from kirana.identity.sqlite_store import SQLiteProfileStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@st.composite
def event_sets(draw: st.DrawFn) -> list[dict]:
    n = draw(st.integers(min_value=1, max_value=25))
    events = []
    for i in range(n):
        event: dict = {
            "type": draw(st.sampled_from(["identify", "track"])),
            "messageId": f"m{i:03d}",
            "timestamp": (T0 + timedelta(minutes=draw(st.integers(0, 50)))).isoformat(),
            "event": "E",
        }
        if draw(st.booleans()):
            event["userId"] = f"u{draw(st.integers(0, 3))}"
        if draw(st.booleans()) or "userId" not in event:
            event["anonymousId"] = f"a{draw(st.integers(0, 5))}"
        traits = {}
        if draw(st.booleans()):
            traits["email"] = f"e{draw(st.integers(0, 2))}@x.io"
        if draw(st.booleans()):
            traits["score"] = draw(st.integers(0, 3))
        if traits:
            if event["type"] == "identify":
                event["traits"] = traits
            else:
                event["context"] = {"traits": traits}
        events.append(event)
    return events


def snapshot(store: SQLiteProfileStore, events: list[dict]) -> set:
    idents = {i for e in events for i in observe(e, IdentityRules()).identifiers}
    out = set()
    for ident in idents:
        profile = store.profile(ident)
        out.add((frozenset(profile.identities), tuple(sorted(profile.traits.items()))))
    return out


def run(events: list[dict], path: Path) -> set:
    store = SQLiteProfileStore(path)
    resolver = IdentityResolver(store)
    with store.transaction():
        for event in events:
            resolver.apply_event(event)
    result = snapshot(store, events)
    store.close()
    return result


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=event_sets(), data=st.data())
def test_any_arrival_order_gives_the_same_profiles(
    events: list[dict], data: st.DataObject, tmp_path: Path
) -> None:
    shuffled = data.draw(st.permutations(events))
    tag = uuid.uuid4().hex  # a fresh store per example (tmp_path is shared)
    in_order = run(events, tmp_path / f"{tag}-a.sqlite")
    assert run(shuffled, tmp_path / f"{tag}-b.sqlite") == in_order
    assert run(events + shuffled, tmp_path / f"{tag}-c.sqlite") == in_order  # full replay

    # and it equals the batch definition: every link at once, in canonical order
    rules = IdentityRules()
    observations = [observe(e, rules) for e in events]
    links = {}
    for o in observations:
        for link in event_links(o.identifiers, o.timestamp, o.message_id):
            key = (link.a, link.b)
            links[key] = min(links.get(key, link), link)
    idents = {i for o in observations for i in o.identifiers}
    groups: dict = {}
    for ident, root in resolve(idents, list(links.values()), rules).groups.items():
        groups.setdefault(root, set()).add(ident)
    assert {frozenset(g) for g in groups.values()} == {p[0] for p in in_order}
    # no profile ever holds two user ids
    for identities, _ in in_order:
        assert sum(1 for t, _ in identities if t == "user_id") <= 1
