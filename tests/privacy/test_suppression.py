"""Suppression judges every identifier the identity rules know, wherever the event carries
it, and an erasure's grace period leaves no event judged under the old list in flight."""

from __future__ import annotations

import asyncio
import json
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.collect.service import Credentials
from kirana.config import Settings
from kirana.identity.rules import IdentityRules, identifiers
from kirana.privacy.log_match import log_matcher
from kirana.privacy.suppression import SuppressionList

RULES = IdentityRules(trait_ids={"email": "email", "phone": "phone", "loyalty_id": "loyalty"})
values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-@.", min_size=6, max_size=20)


@st.composite
def events(draw) -> dict:
    """Events carrying identifiers anywhere the rules look, valid or not."""
    kind = draw(st.sampled_from(["track", "identify", "page", "alias"]))
    event: dict = {"type": kind, "event": "Something"}
    for key in ("userId", "anonymousId"):
        if draw(st.booleans()):
            event[key] = draw(values)
    if kind == "alias":
        event["previousId"] = draw(values)
    person = {k: draw(values) for k in ("email", "phone", "loyalty") if draw(st.booleans())}
    where = draw(st.sampled_from(["context", "traits"]))
    if where == "traits" and kind == "identify":
        event["traits"] = person
    else:
        event.setdefault("context", {})["traits"] = person
    if draw(st.booleans()):
        event.setdefault("context", {})["device"] = {"id": draw(values)}
    if draw(st.booleans()):
        event["properties"] = draw(st.sampled_from([[], "text", 3]))  # invalid, quarantined
    return event


@settings(max_examples=300, deadline=None)
@given(event=events(), data=st.data())
def test_any_identifier_of_an_event_suppresses_it_and_only_those_do(event, data) -> None:
    found, _ = identifiers(event, RULES)
    stored: set = set()
    suppression = SuppressionList(lambda: stored, RULES, reload_every=1e9)
    unrelated = ("user_id", "someone-else-entirely")
    suppression.add([unrelated])
    assert not suppression.event(event)
    assert not suppression.event(json.dumps(event).encode())
    if not found:
        return
    erased = data.draw(st.sampled_from(found))
    suppression.add([erased])
    assert suppression.event(event), erased
    assert suppression.event(json.dumps(event).encode()), erased  # raw, as if invalid
    assert log_matcher([erased], RULES)(b"E" + json.dumps(event).encode())


def test_the_grace_period_leaves_no_event_judged_before_it_in_flight(settings: Settings) -> None:
    """Many requests of one person race an erasure's suppression through the real collector
    and log (fsync on): after ``wait_for_judgements``, nothing of theirs is appended."""
    from kirana.runtime import Platform

    platform = Platform.open(settings)  # consumers not started: only the collector runs
    _, write_key = platform.store.create_source("web")
    credentials = Credentials(x_write_key=write_key)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    try:
        for round_ in range(8):
            user = f"racer-{round_}-c4e1"
            body = json.dumps(
                {"batch": [{"type": "track", "userId": user, "event": "Tick"}] * 20}
            ).encode()
            stop = threading.Event()

            async def sender(user: str = user, body: bytes = body, stop=stop) -> None:
                while not stop.is_set():
                    await platform.collector.ingest("batch", body, credentials=credentials)
                    await asyncio.sleep(0)  # as a server would, between requests

            start = platform.log.end_offset
            tasks = [asyncio.run_coroutine_threadsafe(sender(), loop) for _ in range(8)]
            assert platform.log.wait_for(start, timeout=30)  # the race is on
            generation = platform.suppression.add([("user_id", user)])
            assert platform.suppression.wait_for_judgements(generation, timeout=30)
            erasure_point = platform.log.end_offset
            threading.Event().wait(0.2)  # the senders go on, now suppressed
            stop.set()
            for task in tasks:
                task.result(timeout=30)
            after = platform.log.read(erasure_point, 100_000).records
            assert not [r for r in after if user.encode() in r.payload], round_
    finally:
        loop.call_soon_threadsafe(loop.stop)
        platform.close()
