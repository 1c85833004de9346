"""The debugger's and the overview's shortcuts through the Delta log give exactly what a
full scan of the table gives, whatever the files' overlaps (compaction mixes sources and
offsets, and a file can span minutes)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.console import debugger
from kirana.console.lake_files import EventFiles
from kirana.lake.catalog import connect

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
row = st.tuples(
    st.sampled_from(["src_a", "src_b", "src_c"]),
    st.integers(0, 10_000),  # log offset
    st.integers(0, 3 * 3600),  # seconds after START
)
files = st.lists(st.lists(row, min_size=1, max_size=40), min_size=1, max_size=12)


def _write(lake: Path, batches: list[list[tuple[str, int, int]]]) -> None:
    seen: set[int] = set()
    for batch in batches:
        rows = [r for r in batch if r[1] not in seen]  # a log offset is one event
        seen |= {r[1] for r in rows}
        if not rows:
            continue
        table = pa.table(
            {
                "message_id": [f"m{o}" for _, o, _ in rows],
                "type": ["track"] * len(rows),
                "event": ["Viewed"] * len(rows),
                "name": pa.nulls(len(rows), pa.string()),
                "user_id": [f"u{o % 7}" for _, o, _ in rows],
                "anonymous_id": pa.nulls(len(rows), pa.string()),
                "source_id": [s for s, _, _ in rows],
                "received_at": pa.array(
                    [START + timedelta(seconds=t) for _, _, t in rows], pa.timestamp("us", "UTC")
                ),
                "properties": ["{}"] * len(rows),
                "traits": pa.nulls(len(rows), pa.string()),
                "context": pa.nulls(len(rows), pa.string()),
                "log_offset": pa.array([o for _, o, _ in rows], pa.int64()),
            }
        )
        write_deltalake(str(lake / "events"), table, mode="append")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=files, source=st.sampled_from(["src_a", "src_b"]), after=st.integers(-1, 9000))
def test_the_latest_rows_of_a_source_are_those_of_a_full_scan(batches, source, after) -> None:
    lake = Path(tempfile.mkdtemp())
    try:
        _write(lake, batches)
        debugger.PAGE, debugger.FILES_PER_STEP = 5, 1  # many steps on small data
        full = connect(lake).execute(
            "SELECT log_offset FROM events WHERE source_id = $s ORDER BY log_offset DESC",
            {"s": source},
        )
        expected = [o for (o,) in full.fetchall()]
        latest = [r["offset"] for r in debugger._lake_rows(lake, source, None)]
        assert latest == expected[:5]
        newer = [r["offset"] for r in debugger._lake_rows(lake, source, after)]
        assert newer == [o for o in expected if o > after][:5]
    finally:
        debugger.PAGE, debugger.FILES_PER_STEP = 50, 8
        shutil.rmtree(lake)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=files, minutes_back=st.integers(0, 200))
def test_events_per_minute_are_those_of_a_full_scan(batches, minutes_back) -> None:
    lake = Path(tempfile.mkdtemp())
    try:
        _write(lake, batches)
        since = START + timedelta(minutes=minutes_back)
        full = connect(lake).execute(
            "SELECT date_trunc('minute', received_at) m, count(*) FROM events "
            "WHERE received_at >= $since GROUP BY m ORDER BY m",
            {"since": since},
        )
        assert EventFiles(lake / "events").per_minute(since) == dict(full.fetchall())
    finally:
        shutil.rmtree(lake)
