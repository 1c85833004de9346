from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kirana.destinations.store import DeliveryStore
from tests.destinations.receivers import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


@pytest.fixture
def delivery(tmp_path: Path) -> Iterator[DeliveryStore]:
    store = DeliveryStore(tmp_path / "delivery.sqlite")
    yield store
    store.close()
