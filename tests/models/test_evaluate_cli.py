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
