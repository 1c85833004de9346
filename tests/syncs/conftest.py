from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from kirana.destinations.config import parse_destination
from kirana.destinations.store import DeliveryStore
from kirana.syncs.runner import SyncRunner
from kirana.syncs.store import SyncStore
from tests.destinations.receivers import WebhookReceiver


def write_table(lake_dir: Path, name: str, rows: list[dict]) -> None:
    """Replace a lake table's contents (what a model job or a replication would do)."""
    write_deltalake(str(lake_dir / name), pa.Table.from_pylist(rows), mode="overwrite")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture
def delivery(tmp_path: Path, receiver: WebhookReceiver) -> Iterator[DeliveryStore]:
    store = DeliveryStore(tmp_path / "state" / "delivery.sqlite")
    store.save_destination(
        parse_destination(
            {
                "name": "hook",
                "kind": "webhook",
                "settings": {"url": receiver.url, "secret": "s" * 20},
            }
        )
    )
    yield store
    store.close()


@pytest.fixture
def runner(tmp_path: Path, delivery: DeliveryStore) -> SyncRunner:
    return SyncRunner(SyncStore(delivery), delivery, tmp_path / "lake", tmp_path / "snapshots")
