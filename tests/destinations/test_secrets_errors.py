"""Stored errors are scrubbed again when shown: those an older version stored verbatim too."""

from __future__ import annotations

import pytest

from kirana.destinations import service
from kirana.destinations.records import OutboundRecord
from kirana.destinations.store import DeliveryStore

DSN_SECRET = "dsn-password-zz81"
HEADER_SECRET = "header-token-zz82"


@pytest.fixture
def failed(delivery: DeliveryStore) -> DeliveryStore:
    """A destination whose queue, dead letters and health hold credential-bearing errors."""
    service.create(
        delivery,
        {
            "name": "wh",
            "kind": "postgres",
            "settings": {"dsn": f"host=db user=app password={DSN_SECRET}", "table": "t"},
        },
    )
    error = f"OperationalError: bad conninfo 'host=db password={DSN_SECRET}' near {DSN_SECRET}"
    delivery.enqueue([("wh", OutboundRecord(f"r{i}", "u", "u", "event", {})) for i in (1, 2)], "t")
    ids = [i for i, _ in delivery.load([c.id for c in delivery.candidates("wh", 10)])]
    delivery.mark_failed("wh", ids[:1], error, retry_at=None, counts=True, max_attempts=1)
    delivery.mark_failed("wh", ids[1:], error, retry_at=0.0, counts=True, max_attempts=5)
    delivery.note_error("wh", error)
    return delivery


def test_every_error_surface_is_scrubbed(failed: DeliveryStore) -> None:
    shown = [
        service.describe(failed, "wh"),
        service.status(failed),
        service.dead_letters(failed, "wh"),
        service.records(failed, "wh"),
        service.record_status(failed, "wh", "r1"),
        service.record_status(failed, "wh", "r2"),
    ]
    text = repr(shown)
    assert DSN_SECRET not in text
    assert text.count("OperationalError") >= 6  # the errors are there, only masked
    assert "password=***" in text


def test_a_credential_only_the_configuration_knows_is_masked_by_value(
    delivery: DeliveryStore,
) -> None:
    """A server that echoes a header value bare: no shape gives it away, the config does."""
    service.create(
        delivery,
        {
            "name": "hook",
            "kind": "webhook",
            "settings": {
                "url": "http://127.0.0.1:9/h",
                "secret": "s" * 16,
                "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
            },
        },
    )
    delivery.note_error("hook", f"HTTP 401: unknown token {HEADER_SECRET}")
    assert (
        service.describe(delivery, "hook")["health"]["last_error"] == "HTTP 401: unknown token ***"
    )
