"""The job runner: versioned outputs, the run registry, rollback, failures, the job lock."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.config import ModelSettings, Settings, load_settings
from kirana.lake.catalog import connect
from kirana.models.jobs import outputs
from kirana.models.jobs.embedded import EmbeddedEngine
from kirana.models.jobs.engine import OrdersSource
from kirana.models.jobs.locks import JobBusy, job_lock
from kirana.models.jobs.publish import publish_lists
from kirana.models.jobs.runner import JobRunner, RollbackError
from kirana.serving.store import ServingStore, serving_path
from tests.models.jobs_lake import demo_events, load_lake


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template")
    load_lake(path, demo_events(20))
    return path


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Settings:
    """A fresh copy of a 20-user demo lake (log, lake and state) for each test."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    settings = load_settings(tmp_path)
    settings.models = ModelSettings(evaluate=False, k=5)
    return settings


def _serving(settings: Settings, widget: str, key: str) -> list[tuple[str, float]]:
    store = ServingStore(serving_path(settings.state_dir))
    try:
        return store.recommendations(widget, key)
    finally:
        store.close()


def _lake_list(settings: Settings, user: str) -> list[str]:
    rows = connect(settings.lake_dir).execute(
        "SELECT item_id FROM model_buy_again WHERE user_id = ? ORDER BY rank", [user]
    )
    return [r[0] for r in rows.fetchall()]


def test_runs_are_versioned_recorded_and_rolled_back(data: Settings, tmp_path: Path) -> None:
    runner = JobRunner(data)
    first = runner.run("buy_again")
    assert first.status == "succeeded", first.error
    events_version = DeltaTable(data.lake_dir / "events").version()
    assert first.data_version == {"events": events_version}
    assert first.parameters["k"] == 5 and "tifu_knn" in first.parameters["engine_params"]
    assert first.metrics["output_rows"] == first.metrics["published"]["rows"] > 0
    user = "1"
    before = _lake_list(data, user)
    assert [i for i, _ in _serving(data, "buy_again", user)] == before and len(before) == 5

    # more orders arrive; the second run sees a newer lake and writes a new version
    load_lake(tmp_path, demo_events(5, first=20))
    data.models = ModelSettings(evaluate=False, k=3)
    second = runner.run("buy_again")
    assert second.status == "succeeded", second.error
    assert second.output_version == first.output_version + 1
    assert second.data_version["events"] > first.data_version["events"]
    assert len(_lake_list(data, user)) == 3 and len(_serving(data, "buy_again", user)) == 3
    by_run = connect(data.lake_dir).sql("SELECT DISTINCT run_id FROM model_buy_again").fetchall()
    assert by_run == [(second.run_id,)]

    back = runner.rollback("buy_again", first.run_id)
    assert back.status == "succeeded" and back.kind == "rollback", back.error
    assert back.rolled_back_to == first.run_id and back.output_version == second.output_version + 1
    assert _lake_list(data, user) == before
    assert [i for i, _ in _serving(data, "buy_again", user)] == before
    assert runner.registry.current("buy_again").run_id == back.run_id
    assert [r.run_id for r in runner.registry.runs("buy_again")] == [
        back.run_id,
        second.run_id,
        first.run_id,
    ]
    old = outputs.read_output(data.lake_dir, "buy_again", first.output_version)
    assert set(old.column("run_id").to_pylist()) == {first.run_id}
    runner.close()


class Exploding(EmbeddedEngine):
    """The embedded engine with one job that fails midway (as a crash in a model would)."""

    def buy_again(self, orders: OrdersSource, *, k: int) -> pa.Table:
        raise MemoryError("simulated: the model ran out of memory")


def test_a_failing_run_leaves_output_and_serving_alone(data: Settings) -> None:
    good = JobRunner(data).run("buy_again")
    version = outputs.current_version(data.lake_dir, "buy_again")
    served = _serving(data, "buy_again", "1")
    failed = JobRunner(data, engine=Exploding(data.models)).run("buy_again")
    assert failed.status == "failed" and "simulated: the model ran out" in failed.error
    assert failed.output_version is None and failed.engine == "embedded"
    assert outputs.current_version(data.lake_dir, "buy_again") == version
    assert _serving(data, "buy_again", "1") == served
    assert JobRunner(data).registry.current("buy_again").run_id == good.run_id


def test_a_failed_publish_restores_the_lake_table(data: Settings, monkeypatch) -> None:
    good = JobRunner(data).run("popular")
    before = outputs.read_output(data.lake_dir, "popular")

    def refuse(self, widget, rows, *, version):
        raise OSError("simulated: serving store disk full")

    monkeypatch.setattr(ServingStore, "replace_recommendations", refuse)
    data.models = ModelSettings(evaluate=False, k=2)
    failed = JobRunner(data).run("popular")
    assert failed.status == "failed" and "disk full" in failed.error
    after = outputs.read_output(data.lake_dir, "popular")
    assert after.to_pylist() == before.to_pylist()  # 5 rows of the good run, not 2
    assert set(after.column("run_id").to_pylist()) == {good.run_id}
    monkeypatch.undo()
    assert len(_serving(data, "popular", "*")) == 5


def test_first_run_failing_to_publish_leaves_no_table(data: Settings, monkeypatch) -> None:
    def refuse(self, widget, rows, *, version):
        raise OSError("simulated")

    monkeypatch.setattr(ServingStore, "replace_recommendations", refuse)
    assert JobRunner(data).run("popular").status == "failed"
    assert outputs.current_version(data.lake_dir, "popular") is None
    assert "model_popular" not in [
        r[0] for r in connect(data.lake_dir).sql("SHOW TABLES").fetchall()
    ]


@dataclass
class Renamed:
    """Any object with the engine's methods is an engine; this one returns a wrong shape."""

    name: str = "custom"

    def popular(self, orders: OrdersSource, *, k: int) -> pa.Table:
        return pa.table({"user_id": ["*"], "item": ["x"], "score": [1.0], "rank": [1]})

    def close(self) -> None:
        pass


def test_an_engine_returning_the_wrong_shape_fails_clearly(data: Settings) -> None:
    run = JobRunner(data, engine=Renamed()).run("popular")  # type: ignore[arg-type]
    assert run.status == "failed" and run.engine == "custom"
    assert "without column(s) ['item_id']" in run.error
    assert outputs.current_version(data.lake_dir, "popular") is None


def test_one_run_of_a_job_at_a_time(data: Settings) -> None:
    runner = JobRunner(data)
    with job_lock(data.state_dir / "jobs", "popular", "a test"):
        with pytest.raises(JobBusy, match="already running \\(a test, pid"):
            runner.run("popular")
        assert runner.run("buy_again").status == "succeeded"  # other jobs are free
    assert runner.registry.runs("popular") == []
    assert runner.run("popular").status == "succeeded"


def test_rollback_refuses_what_it_cannot_do(data: Settings) -> None:
    runner = JobRunner(data)
    popular = runner.run("popular")
    with pytest.raises(RollbackError, match="no run 'nope'"):
        runner.rollback("popular", "nope")
    with pytest.raises(RollbackError, match="not a succeeded run of 'buy_again'"):
        runner.rollback("buy_again", popular.run_id)


def test_all_runs_every_job_on_one_engine(data: Settings, monkeypatch) -> None:
    from kirana.models.jobs import runner as runner_module

    opened: list[EmbeddedEngine] = []
    closed: list[EmbeddedEngine] = []

    class Counted(EmbeddedEngine):
        def close(self) -> None:
            closed.append(self)

    def open_counted(name: str, models: ModelSettings) -> EmbeddedEngine:
        opened.append(Counted(models))
        return opened[-1]

    monkeypatch.setattr(runner_module, "open_engine", open_counted)
    runs = JobRunner(data).run_all()
    assert len(opened) == 1 and closed == opened
    assert [r.job for r in runs] == [
        "buy_again",
        "recommended_for_you",
        "frequently_bought_together",
        "popular",
        "buying_patterns",
    ]
    assert all(r.status == "succeeded" for r in runs), [r.error for r in runs]
    tables = {r[0] for r in connect(data.lake_dir).sql("SHOW TABLES").fetchall()}
    assert {f"model_{r.job}" for r in runs} <= tables
    fbt = _serving(data, "frequently_bought_together", "24852")  # bananas, in every demo
    assert 0 < len(fbt) <= 5 and fbt == sorted(fbt, key=lambda x: -x[1])


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.text("xyz", min_size=1, max_size=2), st.floats(-5, 5)),
        max_size=30,
        unique_by=lambda r: (r[0], r[1]),
    )
)
def test_published_lists_keep_rank_order(tmp_path_factory, rows) -> None:
    ranked = {}
    for key, item, score in rows:
        ranked.setdefault(key, []).append((item, score))
    table_rows = [
        {"user_id": key, "item_id": item, "score": score, "rank": rank}
        for key, items in ranked.items()
        for rank, (item, score) in enumerate(items, start=1)
    ]
    table = pa.Table.from_pylist(
        list(reversed(table_rows)),
        schema=pa.schema(
            [
                ("user_id", pa.string()),
                ("item_id", pa.string()),
                ("score", pa.float64()),
                ("rank", pa.int32()),
            ]
        ),
    )
    store = ServingStore(tmp_path_factory.mktemp("serving") / "s.sqlite")
    stats = publish_lists(
        store, "w", table, key="user_id", item="item_id", score="score", version="v"
    )
    assert stats == {"keys": len(ranked), "rows": len(rows)}
    for key, items in ranked.items():
        assert store.recommendations("w", key) == items
    store.close()


def test_a_run_whose_process_died_is_marked_interrupted(data: Settings) -> None:
    runner = JobRunner(data)
    crashed = runner.registry.start("popular", "embedded", {"k": 5}, output="popular")
    assert runner.registry.get(crashed).status == "running"  # what a kill -9 leaves behind
    assert runner.run("popular").status == "succeeded"
    after = runner.registry.get(crashed)
    assert after.status == "failed" and after.error.startswith("interrupted")


def test_extra_order_tables_are_read_and_versioned(data: Settings) -> None:
    from datetime import UTC, datetime

    from deltalake import write_deltalake

    time = pa.array([datetime(2025, 12, 30, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC"))
    shop = pa.table(
        {
            "user_id": ["s1"] * 3,
            "order_id": ["x", "y", "z"],
            "order_time": time,
            "product_id": ["only-in-the-shop-db"] * 3,
        }
    )
    write_deltalake(data.lake_dir / "shop_order_lines", shop)
    write_deltalake(data.lake_dir / "shop_order_lines", shop, mode="overwrite")
    data.models.extra_order_tables = ["shop_order_lines"]
    run = JobRunner(data).run("buy_again")
    assert run.status == "succeeded", run.error
    assert run.data_version["shop_order_lines"] == 1
    assert _lake_list(data, "s1") == ["only-in-the-shop-db"]


def test_listing_reaps_only_runs_whose_lock_is_free(data: Settings) -> None:
    runner = JobRunner(data)
    live = runner.registry.start("popular", "embedded", {}, output="popular")
    dead = runner.registry.start("buy_again", "embedded", {}, output="buy_again")
    with job_lock(data.state_dir / "jobs", "popular", "a live run"):
        assert runner.reap_interrupted() == 1
    assert runner.registry.get(live).status == "running"
    assert runner.registry.get(dead).status == "failed"


def test_erasure_removes_a_customer_from_every_output_version(data: Settings) -> None:
    runner = JobRunner(data)
    first = runner.run("buy_again")
    assert runner.run("buying_patterns").status == "succeeded"
    assert runner.run("buy_again").status == "succeeded"
    assert _lake_list(data, "1")
    deleted = outputs.erase_from_outputs(data.lake_dir, ["1"])
    assert deleted == 5 + 1  # five buy-again items and one prediction
    for table in ("model_buy_again", "model_buying_patterns"):
        sql = f"SELECT count(*) FROM {table} WHERE user_id = '1'"
        assert connect(data.lake_dir).sql(sql).fetchall() == [(0,)]
    assert connect(data.lake_dir).sql("SELECT count(*) FROM model_buy_again").fetchall()[0][0] > 0
    back = runner.rollback("buy_again", first.run_id)  # its files held user 1: vacuumed
    assert back.status == "failed" and "rerun the job instead" in back.error
