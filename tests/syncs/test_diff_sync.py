"""Syncs send only what changed, mirror deletes, insert-only skips updates, replays dedupe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kirana.destinations.config import ConfigError
from kirana.destinations.deliverer import Deliverer
from kirana.destinations.registry import build
from kirana.destinations.store import DeliveryStore
from kirana.syncs.model import parse_sync
from kirana.syncs.runner import SyncRunner
from tests.destinations.receivers import WebhookReceiver
from tests.syncs.conftest import write_table

BEFORE = [
    {"user_id": "u1", "score": 0.1, "tier": "a", "internal": 1},
    {"user_id": "u2", "score": 0.2, "tier": "b", "internal": 1},
    {"user_id": "u3", "score": 0.3, "tier": "c", "internal": 1},
    {"user_id": "u4", "score": 0.4, "tier": "d", "internal": 1},
]
AFTER = [
    {"user_id": "u1", "score": 0.1, "tier": "a", "internal": 2},  # only an unmapped column moved
    {"user_id": "u2", "score": 0.9, "tier": "b", "internal": 1},  # changed
    {"user_id": "u4", "score": 0.4, "tier": "d", "internal": 1},  # unchanged
    {"user_id": "u5", "score": 0.5, "tier": "e", "internal": 1},  # new; u3 left the source
]


def sync(runner: SyncRunner, mode: str, name: str = "scores") -> None:
    runner.syncs.save(
        parse_sync(
            {
                "name": name,
                "source": {"sql": "SELECT * FROM scores"},
                "key": "user_id",
                "destination": "hook",
                "mapping": {"user": "user_id", "churn_risk": "score", "tier": "tier"},
                "mode": mode,
            }
        )
    )


def deliver(delivery: DeliveryStore) -> None:
    config = delivery.destination("hook")
    deliverer = Deliverer(delivery, config, build(config))
    for _ in range(100):
        if delivery.health("hook")["queue_depth"] == 0:
            break
        time.sleep(deliverer.step())
    deliverer.stop()


def sent(receiver: WebhookReceiver) -> list[tuple[str, str, dict]]:
    out = [(r["action"], r["key"], r["data"]) for r in receiver.accepted]
    receiver.accepted.clear()
    return out


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("upsert", [("upsert", "u2", 0.9), ("upsert", "u5", 0.5)]),
        ("mirror", [("upsert", "u2", 0.9), ("upsert", "u5", 0.5), ("delete", "u3", None)]),
        ("insert", [("insert", "u5", 0.5)]),
    ],
)
def test_second_run_sends_only_the_changes(
    runner: SyncRunner,
    delivery: DeliveryStore,
    receiver: WebhookReceiver,
    tmp_path: Path,
    mode: str,
    expected: list,
) -> None:
    write_table(tmp_path / "lake", "scores", BEFORE)
    sync(runner, mode)
    first = runner.run("scores")
    assert (first.rows_read, first.added, first.queued) == (4, 4, 4)
    deliver(delivery)
    initial = sent(receiver)
    assert sorted(k for _, k, _ in initial) == ["u1", "u2", "u3", "u4"]
    assert initial[0][2] == {"user": "u1", "churn_risk": 0.1, "tier": "a"}

    write_table(tmp_path / "lake", "scores", AFTER)
    second = runner.run("scores")
    deliver(delivery)
    got = [(action, key, data["churn_risk"]) for action, key, data in sent(receiver)]
    assert got == expected
    assert second.queued == len(expected)
    assert second.unchanged == 2
    if mode == "mirror":
        assert second.deleted == 1
    # nothing changed since: a third run sends nothing
    third = runner.run("scores")
    assert third.queued == 0
    history = runner.syncs.runs("scores")
    assert [r["status"] for r in history] == ["succeeded"] * 3
    assert history[1]["queued"] == len(expected)


def test_a_replayed_run_queues_nothing_twice(
    runner: SyncRunner, delivery: DeliveryStore, tmp_path: Path
) -> None:
    write_table(tmp_path / "lake", "scores", BEFORE)
    sync(runner, "mirror")
    runner.run("scores")
    write_table(tmp_path / "lake", "scores", AFTER)
    assert runner.run("scores").queued == 3
    # as if run 1's commit had been lost: the sync is back on no snapshot, the source as then
    runner.syncs.delivery.conn().execute("UPDATE syncs SET snapshot = NULL")
    write_table(tmp_path / "lake", "scores", BEFORE)
    replayed = runner.run("scores")
    # the same diff yields the same record ids, which the queue already holds
    assert replayed.added == 4 and replayed.queued == 0
    assert delivery.health("hook")["queue_depth"] == 7


def test_bad_syncs_fail_with_the_reason_in_history(
    runner: SyncRunner, delivery: DeliveryStore, tmp_path: Path
) -> None:
    write_table(tmp_path / "lake", "scores", [*BEFORE, BEFORE[0]])
    sync(runner, "upsert")
    with pytest.raises(ConfigError, match="must be unique"):
        runner.run("scores")
    runner.syncs.save(
        parse_sync(
            {
                "name": "typo",
                "source": {"sql": "SELECT * FROM scroes"},
                "key": "user_id",
                "destination": "hook",
            }
        )
    )
    with pytest.raises(ConfigError, match=r"source\.sql"):
        runner.run("typo")
    (failed,) = runner.syncs.runs("typo")
    assert failed["status"] == "failed" and "scroes" in failed["error"]
    with pytest.raises(ConfigError, match="exactly one"):
        parse_sync({"name": "x", "source": {}, "key": "k", "destination": "hook"})
    with pytest.raises(ConfigError, match="mode"):
        parse_sync(
            {
                "name": "x",
                "source": {"sql": "SELECT 1"},
                "key": "k",
                "destination": "hook",
                "mode": "merge",
            }
        )


def test_scheduled_syncs_run_when_due(runner: SyncRunner, tmp_path: Path) -> None:
    write_table(tmp_path / "lake", "scores", BEFORE)
    runner.syncs.save(
        parse_sync(
            {
                "name": "hourly",
                "source": {"sql": "SELECT * FROM scores"},
                "key": "user_id",
                "destination": "hook",
                "schedule_seconds": 0.05,
            }
        )
    )
    assert runner.run_due() == []  # not yet due
    time.sleep(0.1)
    (report,) = runner.run_due()
    assert report.sync == "hourly" and report.queued == 4
    assert runner.syncs.runs("hourly")[0]["trigger"] == "schedule"
