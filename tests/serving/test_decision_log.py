"""The decision log's queue: what the request path encodes comes out of the Delta table the
same, in order, across chunk boundaries, failed writes and a full queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.automation.ranking import Decision, ShownItem, ShownWidget
from kirana.serving import decision_log
from kirana.serving.decision_log import SCHEMA, DecisionLog, LoggedRow
from kirana.serving.evaluation import decisions

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
text = st.text(min_size=1, max_size=12)  # any Unicode: ids and keys come from users


@st.composite
def logged_rows(draw: st.DrawFn) -> LoggedRow:
    decision_id = draw(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))
    widgets = []
    for wpos in range(draw(st.integers(0, 3))):
        items = tuple(
            ShownItem(
                key=draw(text),
                position=ipos,
                tracking_id=f"{decision_id}.{wpos}.{ipos}",
                propensity=draw(st.floats(0.001, 1.0)),
                explored=draw(st.booleans()),
                arm=draw(st.none() | text),
            )
            for ipos in range(draw(st.integers(0, 4)))
        )
        widgets.append(
            ShownWidget(
                key=draw(text),
                kind=draw(st.sampled_from(["banner", "buy_again", "popular"])),
                position=wpos,
                propensity=draw(st.floats(0.001, 1.0)),
                pinned=draw(st.booleans()),
                explored=draw(st.booleans()),
                epoch=(draw(st.integers(0, 5)), 0.0),
                items=items,
                candidates=tuple(draw(st.lists(text, max_size=4))),
            )
        )
    decision = Decision(
        decision_id=decision_id,
        placement=draw(text),
        user_id="u:" + draw(text),
        segment=draw(text),
        at=T0 + timedelta(microseconds=draw(st.integers(0, 10**9))),
        widgets=tuple(widgets),
        candidates=tuple(w.key for w in widgets),
        evicted=(),
    )
    experiments = tuple(
        {"experiment_id": draw(text), "variation_id": draw(text)}
        for _ in range(draw(st.integers(0, 2)))
    )
    return LoggedRow(decision, draw(st.none() | text), draw(text), experiments)


def row(i: int) -> LoggedRow:
    decision = Decision(
        decision_id=f"{i:016x}",
        placement="home_feed",
        user_id=f"u:user-{i}",
        segment="all",
        at=T0 + timedelta(seconds=i),
        widgets=(),
        candidates=(),
        evicted=(),
    )
    return LoggedRow(decision, None, "thompson", ())


@pytest.fixture
def quiet_log(tmp_path: Path):
    """A log whose thread never flushes by itself, writing into ``written``."""
    written: list[pa.Table] = []
    log = DecisionLog(tmp_path, flush_seconds=3600, writer=written.append)
    yield log, written
    log.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        logged_rows(), min_size=1, max_size=12, unique_by=lambda r: r.decision.decision_id
    )
)  # decision ids are unique (random 64 bits): the checks below look rows up by them
def test_rows_read_back_from_the_delta_table_as_they_were_logged(
    rows: list[LoggedRow], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lake = tmp_path_factory.mktemp("lake")
    log = DecisionLog(lake, flush_seconds=3600)
    try:
        for r in rows:
            log.append(r)
        assert log.flush() == len(rows)
    finally:
        log.close()
    assert decisions(lake) == sorted(
        (r.decision for r in rows), key=lambda d: (d.at, d.decision_id)
    )
    from deltalake import DeltaTable

    table = DeltaTable(decision_log.table_path(lake)).to_pyarrow_table()
    by_id = {r.decision.decision_id: r for r in rows}
    for got in table.to_pylist():
        want = by_id[got["decision_id"]]
        assert got["profile_id"] == want.profile_id
        assert got["policy"] == want.policy
        assert (got["placement"], got["segment"]) == (
            want.decision.placement,
            want.decision.segment,
        )
        assert json.loads(got["experiments"]) == list(want.experiments)
        assert got["decided_at"] == want.decision.at
        assert got["widgets_shown"] == len(want.decision.widgets)
        top = want.decision.widgets[0] if want.decision.widgets else None
        assert got["top_widget"] == (top.key if top else None)
        assert got["top_propensity"] == (top.propensity if top else None)


def test_rows_come_out_in_order_across_chunks(quiet_log, monkeypatch) -> None:
    log, written = quiet_log
    monkeypatch.setattr(decision_log, "CHUNK_ROWS", 4)
    for i in range(11):
        log.append(row(i))
    assert log.queued == 11
    assert log.flush() == 11
    (table,) = written
    assert table.schema == SCHEMA
    assert table.column("decision_id").to_pylist() == [f"{i:016x}" for i in range(11)]
    assert log.queued == 0 and log.flush() == 0


def test_a_failed_write_keeps_the_rows_ahead_of_later_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(decision_log, "CHUNK_ROWS", 3)
    attempts: list[pa.Table] = []

    def flaky(table: pa.Table) -> None:
        attempts.append(table)
        if len(attempts) == 1:
            raise OSError("disk full")

    log = DecisionLog(tmp_path, flush_seconds=3600, writer=flaky)
    try:
        for i in range(5):
            log.append(row(i))
        with pytest.raises(OSError, match="disk full"):
            log.flush()
        assert log.queued == 5
        for i in range(5, 8):
            log.append(row(i))
        assert log.flush() == 8
    finally:
        log.close()
    assert attempts[1].column("decision_id").to_pylist() == [f"{i:016x}" for i in range(8)]
    assert log.written == 8


def test_a_full_queue_drops_the_oldest_chunk_and_counts_it(quiet_log, monkeypatch) -> None:
    log, written = quiet_log
    monkeypatch.setattr(decision_log, "CHUNK_ROWS", 4)
    log._max_pending = 8
    for i in range(13):
        log.append(row(i))
    assert log.dropped == 8  # two chunks of four, oldest first
    log.flush()
    assert written[0].column("decision_id").to_pylist() == [f"{i:016x}" for i in range(8, 13)]


def test_rows_appended_while_a_flush_runs_are_all_written_once(quiet_log, monkeypatch) -> None:
    import threading

    log, written = quiet_log
    monkeypatch.setattr(decision_log, "CHUNK_ROWS", 16)
    n = 5_000

    def requests() -> None:
        for i in range(n):
            log.append(row(i))

    thread = threading.Thread(target=requests)
    thread.start()
    while thread.is_alive():
        log.flush()
    thread.join()
    log.flush()
    ids = [i for table in written for i in table.column("decision_id").to_pylist()]
    assert ids == [f"{i:016x}" for i in range(n)]  # each once, in order


def test_the_limit_holds_after_failed_flushes_left_many_small_chunks(
    tmp_path: Path, monkeypatch
) -> None:
    """A disk stuck for hours at low traffic, then busy hours: failed flushes seal the
    partly filled chunk each time, and the queue must still stay near ``max_pending``."""
    monkeypatch.setattr(decision_log, "CHUNK_ROWS", 64)

    def stuck(table: pa.Table) -> None:
        raise OSError("disk stuck")

    log = DecisionLog(tmp_path, flush_seconds=3600, writer=stuck, max_pending=100)
    try:
        n = 0
        for _ in range(200):  # quiet: one decision between failed flushes
            log.append(row(n))
            n += 1
            with pytest.raises(OSError):
                log.flush()
        for _ in range(200):  # busy: a chunk's worth between failed flushes
            for _ in range(64):
                log.append(row(n))
                n += 1
            with pytest.raises(OSError):
                log.flush()
            assert log.queued <= 100 + 64
        assert log.dropped + log.queued == n
    finally:
        log._writer = lambda table: None  # let close() finish
        log.close()


def test_a_decision_that_cannot_be_encoded_is_dropped_not_raised(quiet_log) -> None:
    log, written = quiet_log
    bad = row(1)
    log.append(LoggedRow(bad.decision, None, "thompson", ({"experiment_id": object()},)))  # type: ignore[dict-item]
    log.append(row(2))
    assert log.dropped == 1 and log.flush() == 1
    assert written[0].column("decision_id").to_pylist() == [f"{2:016x}"]
