"""The pieces erasure is built from: file-level Delta deletes, and participants that fail."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.collect.normalize import normalize
from kirana.collect.schema import event_decoder
from kirana.eventlog.records import event_record
from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.participants import ErasureIncomplete, People
from kirana.runtime import ERASURE, Platform
from tests.warehouse.test_export import warehouse  # noqa: F401 (a fixture)

USERS = ["ann", "ben", "cat", "dan"]
rows = st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 3)), min_size=1, max_size=12)


def file_types(path: Path) -> set[str]:
    return {
        str(f.type)
        for uri in DeltaTable(path).file_uris()
        for f in pq.read_schema(uri.removeprefix("file://"))
    }


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(rows, min_size=1, max_size=3), gone=st.sets(st.sampled_from(USERS)))
def test_file_level_delete_keeps_exactly_the_other_rows(tmp_path_factory, batches, gone) -> None:
    path = tmp_path_factory.mktemp("t") / "table"
    for batch in batches:
        data = pa.table({"user_id": [u for u, _ in batch], "day": [f"d{d}" for _, d in batch]})
        write_deltalake(path, data, mode="append", partition_by=["day"])
    everything = [r for b in batches for r in b]
    expected = Counter((u, f"d{d}") for u, d in everything if u not in gone)

    removed = delete_rows_where_in(path, {"user_id": sorted(gone)})

    assert removed == sum(1 for u, _ in everything if u in gone)
    left = DeltaTable(path).to_pyarrow_table().to_pylist()
    assert Counter((r["user_id"], r["day"]) for r in left) == expected
    assert "string_view" not in file_types(path)
    log = b"".join(f.read_bytes() for f in (path / "_delta_log").glob("*.json"))
    assert (b'"kirana.operation":"erase"' in log) == (removed > 0)  # its own commit
    assert b"predicate" not in log


def test_files_delta_rewrote_as_string_view_come_back_plain_and_filterable(tmp_path) -> None:
    path = tmp_path / "table"
    data = pa.table({"user_id": ["ann", "ben", "cat"], "n": [1, 2, 3]})
    write_deltalake(path, data, mode="append")
    write_deltalake(path, data.slice(1), mode="append")
    DeltaTable(path).delete("n = 1")  # delta-rs 1.6 rewrites the first file as string_view
    assert "string_view" in file_types(path)

    assert delete_rows_where_in(path, {"user_id": ["cat"]}) == 2

    assert "string_view" not in file_types(path)
    conn = duckdb.connect()
    conn.register("t", DeltaTable(path).to_pyarrow_dataset())
    assert conn.sql("SELECT user_id FROM t WHERE user_id >= 'b'").fetchall() == [("ben",)] * 2


def test_people_keys() -> None:
    people = People(
        ("p1", "p2"),
        (("user_id", "u1"), ("anonymous_id", "a1"), ("email", "e@x"), ("user_id", "u2")),
    )
    assert people.customer_ids == ["a1", "u1", "u2"]
    assert people.user_keys == ["a:a1", "u:u1", "u:u2"]
    assert people.values == ["a1", "e@x", "p1", "p2", "u1", "u2"]


def test_a_failed_participant_is_reported_and_a_rerun_finishes(settings) -> None:
    platform = Platform.open(settings)
    platform.start()
    try:
        now = datetime.now(UTC)
        event = {"type": "identify", "userId": "zed-41f0", "traits": {"email": "zed@x.org"}}
        decoded = event_decoder.decode(json.dumps(event).encode())
        platform.log.append_sync([event_record(normalize(decoded, received_at=now, source_id="s"))])
        assert platform.drain()
        calls: list[People] = []

        def flaky(people: People) -> dict[str, int]:
            calls.append(people)
            if len(calls) == 1:
                raise OSError("disk full")
            return {"things": 0}

        platform.on_erase("flaky", flaky)
        with pytest.raises(ErasureIncomplete, match="flaky: OSError: disk full"):
            platform.erase(("email", "zed@x.org"))
        assert platform.profiles.profile(("user_id", "zed-41f0")) is None
        assert calls[0].profile_ids

        report = platform.erase(("user_id", "zed-41f0"))
        assert report.people[0].profile_ids == []
        assert calls[1].identities == (("user_id", "zed-41f0"),)
        assert set(report.details) == {m.rsplit(".", 2)[-2] for m in ERASURE} | {"flaky"}
        nobody = platform.erase(("user_id", "nobody"))
        assert nobody.people[0].identities == [("user_id", "nobody")]
        assert nobody.lake_rows_deleted == nobody.log_records_redacted == 0

        # derived events about her (a reverse-ETL write-back, say) are dropped too
        end = platform.log.end_offset
        platform.emit([{"type": "identify", "userId": "zed-41f0", "traits": {"plan": "x"}}])
        assert platform.log.end_offset == end
        platform.emit([{"type": "identify", "userId": "amy-77", "traits": {"plan": "x"}}])
        assert platform.log.end_offset > end
    finally:
        platform.close()


@pytest.mark.server
def test_the_warehouse_reloads_a_table_whose_history_an_erasure_folded(tmp_path, warehouse):  # noqa: F811
    from kirana.privacy.participants import forget_delta_history
    from kirana.warehouse.export import export_tables
    from tests.warehouse.test_export import POSTGRES_DSN

    conn, schema = warehouse
    lake = tmp_path / "lake"
    rows = pa.table({"user_id": ["zed-41f0", "amy-77"], "item_id": ["p1", "p2"]})
    write_deltalake(lake / "model_buy_again", rows, mode="overwrite")
    write_deltalake(lake / "model_buy_again", rows, mode="overwrite")
    export_tables(lake, POSTGRES_DSN, schema, ["model_buy_again"])

    delete_rows_where_in(lake / "model_buy_again", {"user_id": ["zed-41f0"]})
    forget_delta_history(lake / "model_buy_again")

    report = export_tables(lake, POSTGRES_DSN, schema, ["model_buy_again"])
    assert report["model_buy_again"]["mode"] == "full"
    left = conn.execute(f'SELECT user_id FROM "{schema}".model_buy_again').fetchall()
    assert left == [("amy-77",)]
    logs = b"".join(f.read_bytes() for f in (lake / "model_buy_again" / "_delta_log").iterdir())
    assert b"zed-41f0" not in logs
