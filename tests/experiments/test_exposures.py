"""Exposure logging: ``Experiment Viewed`` once per user and experiment, durably - across a
restart of the platform and across two processes assigning the same users at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.config import Settings
from kirana.eventlog.records import EVENT, body, kind
from kirana.experiments.exposures import EXPOSURE_EVENT, Assigner, hash_id, user_attributes
from kirana.experiments.platform import assign_for_user, experiments
from kirana.experiments.service import ExperimentService
from kirana.experiments.store import ExperimentStore
from kirana.runtime import Platform, open_log

ARMS = [{"key": "a"}, {"key": "b"}, {"key": "c"}]


def _exposures_in_log(settings: Settings) -> list[dict]:
    log = open_log(settings)
    try:
        out, offset = [], log.start_offset
        while True:
            batch = log.read(offset)
            for record in batch.records:
                if kind(record.payload) == EVENT:
                    event = json.loads(body(record.payload))
                    if event.get("event") == EXPOSURE_EVENT:
                        out.append(event)
            if batch.next_offset == offset:
                return out
            offset = batch.next_offset
    finally:
        log.close()


def test_exposures_are_logged_once_across_a_restart(settings: Settings) -> None:
    platform = Platform.open(settings)
    service = experiments(platform).service
    service.create({"key": "hero", "variations": ARMS})
    service.create({"key": "menu", "variations": ARMS[:2], "coverage": 0.5})
    service.start("hero")
    service.start("menu")
    first = {u: assign_for_user(platform, user_id=u) for u in (f"u{i}" for i in range(60))}
    assert all(x.logged for result in first.values() for x in result)
    platform.close()

    platform = Platform.open(settings)
    again = {u: assign_for_user(platform, user_id=u) for u in (f"u{i}" for i in range(80))}
    platform.close()
    for user, result in first.items():
        assert [(x.experiment, x.variation) for x in again[user]] == [
            (x.experiment, x.variation) for x in result
        ]
        assert not any(x.logged for x in again[user])

    events = _exposures_in_log(settings)
    expected = {(x.experiment, u, x.variation) for u, result in again.items() for x in result}
    logged = [
        (e["properties"]["experiment_id"], e["userId"], e["properties"]["variation_id"])
        for e in events
    ]
    assert len(logged) == len(set(logged)) == len(expected)
    assert set(logged) == expected
    # coverage 0.5 left some users out of "menu": nobody is logged for an experiment they are not in
    assert 0 < sum(1 for e, _, _ in logged if e == "menu") < 80


def _assign_in_process(store_path: str, users: list[str], out_path: str, barrier) -> None:
    store = ExperimentStore(Path(store_path))
    service = ExperimentService(store)
    emitted: list[dict] = []
    assigner = Assigner(service, store, emitted.extend)
    service.registry()
    barrier.wait(timeout=60)  # start together, so the two really contend
    for user in users:
        assigner.assign_for_user(user_attributes(user, None))
    Path(out_path).write_text(json.dumps(emitted))
    store.close()


@pytest.mark.slow
def test_two_processes_never_log_the_same_user_twice(tmp_path: Path) -> None:
    store_path = tmp_path / "experiments.sqlite"
    store = ExperimentStore(store_path)
    service = ExperimentService(store)
    service.create({"key": "hero", "variations": ARMS})
    service.start("hero")
    store.close()
    users = [f"user-{i}" for i in range(300)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(
            target=_assign_in_process,
            args=(str(store_path), users[::step], str(tmp_path / f"out{n}.json"), barrier),
        )
        for n, step in enumerate((1, -1))  # same users, opposite order: they collide mid-way
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    emitted = [e for n in range(2) for e in json.loads((tmp_path / f"out{n}.json").read_text())]
    assert sorted(e["userId"] for e in emitted) == sorted(users)
    assert len({e["messageId"] for e in emitted}) == len(users)
    assert all(json.loads((tmp_path / f"out{n}.json").read_text()) for n in range(2))


def test_a_recreated_experiment_is_a_new_run_with_its_own_exposures(tmp_path: Path) -> None:
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    service = ExperimentService(store)
    emitted: list[dict] = []
    assigner = Assigner(service, store, emitted.extend)
    service.create({"key": "hero", "variations": ARMS})
    service.start("hero")
    assigner.assign_for_user(user_attributes("u1", None))
    assigner.assign_for_user(user_attributes("u1", None))
    assert len(emitted) == 1
    service.stop("hero")
    service.delete("hero")
    service.create({"key": "hero", "variations": ARMS})
    service.start("hero")
    assigner.assign_for_user(user_attributes("u1", None))
    assert len(emitted) == 2
    assert emitted[0]["messageId"] != emitted[1]["messageId"]  # the lake keeps both runs
    store.close()


_ids = st.none() | st.text(min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    user_id=_ids,
    anonymous_id=_ids,
    own_id=_ids,
    trait_id=st.text(min_size=1, max_size=8),
    other=st.dictionaries(st.sampled_from(["plan", "country", "id"]), st.integers()),
)
def test_the_id_attribute_follows_its_documented_precedence(
    user_id: str | None,
    anonymous_id: str | None,
    own_id: str | None,
    trait_id: str,
    other: dict,
) -> None:
    """The caller's own `id`, else userId, else anonymousId; never a profile trait `id`."""
    caller = {**other, "id": own_id} if own_id is not None else {}
    profile = {"id": trait_id, "plan": "gold"}
    attrs = user_attributes(user_id, anonymous_id, caller, profile=profile)
    expected = own_id if own_id is not None else (user_id or anonymous_id)
    assert attrs["id"] == expected
    assert hash_id(caller, user_id, anonymous_id) == expected
