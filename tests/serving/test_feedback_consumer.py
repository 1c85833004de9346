"""The feedback consumer counts each impression and click once, durably."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kirana.automation.stats import StatsKey
from kirana.automation.tracking import TrackingToken, encode_token
from kirana.eventlog.records import event_record, quarantine_record
from kirana.eventlog.segments import FileEventLog
from kirana.serving.content_store import ContentStore
from kirana.serving.feedback_consumer import FeedbackConsumer
from kirana.serving.feedback_store import FeedbackStore
from tests.serving.helpers import item

H = 7 * 86400
NOW = datetime.now(UTC).replace(microsecond=0)


def token(item_position: int, item_key: str | None = "b1", decision: str = "d1") -> str:
    return encode_token(
        TrackingToken(
            decision,
            0,
            item_position,
            "home_feed",
            "vegan",
            "hero",
            (1, 0.0),
            None if item_key is None else f"hero/{item_key}",
            (1, 0.0),
        )
    )


def event(name: str, tracking_id: str | None, n: int, user: str = "u1") -> dict:
    props = {} if tracking_id is None else {"tracking_id": tracking_id}
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"m{n}",
        "timestamp": NOW.isoformat(),
        "properties": props,
    }


@pytest.fixture
def parts(tmp_path: Path):
    log = FileEventLog(tmp_path / "log")
    content = ContentStore(tmp_path / "content.sqlite")
    content.create_widget(
        {
            "key": "hero",
            "kind": "banner",
            "frequency_cap": {"max_impressions": 1, "hours": 24},
            "items": [item("b1"), item("b2")],
        }
    )
    yield log, tmp_path
    log.close()


def consumer(log: FileEventLog, folder: Path) -> FeedbackConsumer:
    return FeedbackConsumer(
        log, FeedbackStore(folder / "feedback.sqlite"), ContentStore(folder / "content.sqlite"), H
    )


def read_all(log: FileEventLog, start: int = 0):
    result = log.read(start, 10_000)
    return result.records, result.next_offset


def counts(folder: Path, arm: str, segment: str = "vegan"):
    stats, _ = FeedbackStore(folder / "feedback.sqlite").load_stats(H)
    return stats.counts(StatsKey("home_feed", arm, segment))


def test_impressions_and_clicks_reach_the_store(parts) -> None:
    log, folder = parts
    log.append_sync(
        [
            event_record(event("Promotion Viewed", token(0), 1)),
            event_record(event("Promotion Viewed", token(1, "b2"), 2)),
            event_record(event("Promotion Clicked", token(0), 3)),
            event_record(event("Product Added", token(0), 4)),  # same slot: one click
            event_record(event("Promotion Viewed", token(0), 5)),  # a retry: counted once
            event_record(event("Order Completed", None, 6)),
            event_record(event("Promotion Viewed", "not-a-token", 7)),
            event_record({**event("Promotion Viewed", token(0, decision="d2"), 8), "type": "page"}),
            quarantine_record({"reason": "x"}),
        ]
    )
    c = consumer(log, folder)
    c.handle(*read_all(log))
    assert (c.applied, c.ignored) == (3, 1)
    b1, b2, hero = counts(folder, "hero/b1"), counts(folder, "hero/b2"), counts(folder, "hero")
    assert (b1.shown, b1.clicks) == (1, 1)
    assert (b2.shown, b2.clicks) == (1, 0)
    assert (hero.shown, hero.clicks) == (1, 1)  # a widget is seen once, on its first item
    assert counts(folder, "hero/b1", "all").shown == 1  # pooled too
    # the frequency cap counts the widget view, for the user who saw it
    caps = FeedbackStore(folder / "feedback.sqlite").impressions_of("u:u1", ["hero"], 0)
    assert len(caps["hero"]) == 1


def test_a_failed_batch_leaves_nothing_and_replays_once(parts, monkeypatch) -> None:
    log, folder = parts
    log.append_sync([event_record(event("Promotion Viewed", token(0), 1))])
    records, end = read_all(log)
    c = consumer(log, folder)
    store = c._store
    real = store.set_position

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(store, "set_position", crash)
    with pytest.raises(OSError):
        c.handle(records, end)
    assert counts(folder, "hero/b1").shown == 0 and c.position() == 0
    monkeypatch.setattr(store, "set_position", real)
    c.handle(records, end)  # the runner retries from the unchanged position
    c.handle(records, end)  # and a replay after a crash past the commit changes nothing
    assert counts(folder, "hero/b1").shown == 1
    assert consumer(log, folder).position() == end  # a restart resumes after the batch
