"""`kirana models evaluate` on an orders file and on the lake's Order Completed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.demo.instacart import load_histories, sample_path
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from kirana.lake.loader import LakeLoader

runner = CliRunner()
MODELS = {"G-TopFreq", "P-TopFreq", "ALS", "EASE", "TIFU-KNN"}


def test_evaluate_an_orders_file(tmp_path: Path) -> None:
    frame = pd.read_csv(sample_path())
    users = frame.user_id.unique()[:40]
    path = tmp_path / "orders.parquet"
    frame[frame.user_id.isin(users)].to_parquet(path)
    result = runner.invoke(app, ["models", "evaluate", "--orders", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.output)}
    assert set(rows) >= MODELS
    assert rows["TIFU-KNN"]["recall@10"] > rows["G-TopFreq"]["recall@10"]


def test_evaluate_the_lake(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for history in load_histories()[:30]:
        for order in history.orders:
            events.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": str(history.user_id),
                    "messageId": f"o{order.order_id}",
                    "receivedAt": start.isoformat(),
                    "timestamp": (start + timedelta(days=order.order_number)).isoformat(),
                    "properties": {
                        "order_id": str(order.order_id),
                        "products": [{"product_id": str(p)} for p in order.product_ids],
                    },
                }
            )
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync([event_record(e) for e in events])
        result = log.read(0, 10**6)
        loader.handle(result.records, result.next_offset)
        loader.close()
    out = runner.invoke(app, ["models", "evaluate", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "| TIFU-KNN |" in out.output and "recall@10" in out.output


def test_missing_orders_file_is_a_clear_error(tmp_path: Path) -> None:
    out = runner.invoke(app, ["models", "evaluate", "--orders", str(tmp_path / "nope.csv")])
    assert out.exit_code == 1 and "no such file" in out.output


def _never_repeat_orders(path: Path) -> None:
    """Users who never buy an item twice: every repeat metric has a zero denominator."""
    rows = []
    for user in range(30):
        for order in range(4):
            for slot in range(3):
                item = (user * 7 + order * 3 + slot) % 60 if order < 3 else (order * 3 + slot)
                rows.append((user, user * 10 + order, order + 1, f"i{item}-{order}"))
    frame = pd.DataFrame(rows, columns=["user_id", "order_id", "order_number", "product_id"])
    frame.to_csv(path, index=False)


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"bare {name} in the JSON output")


def test_evaluate_json_is_valid_and_the_table_shows_every_metric(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    _never_repeat_orders(path)
    as_json = runner.invoke(app, ["models", "evaluate", "--orders", str(path), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output, parse_constant=_refuse_constant)
    assert all(row["recall_repeat@10"] is None for row in rows)  # 0 repeats: undefined
    metrics = {k for row in rows for k in row if "@" in k}
    table = runner.invoke(app, ["models", "evaluate", "--orders", str(path)])
    assert table.exit_code == 0, table.output
    header = table.output.splitlines()[0]
    assert {m for m in metrics if m not in header} == set()
    assert "hit@10" in header
