"""Changing a destination without resending its credentials keeps them working.

A client reads a destination (credentials shown as ``***``), changes something else and
sends it back with ``replace=true``: the real receiver must still get the custom header,
the URL's token and a signature made with the stored signing secret.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from kirana.destinations.signing import verify
from tests.conftest import RunningKirana
from tests.destinations.receivers import WebhookReceiver
from tests.destinations.test_delivery_e2e import wait_for

SIGNING = "signing-secret-0123456789-kept"
BEARER = "Bearer header-token-kept-42"
TOKEN = "url-token-kept-77"

pytestmark = pytest.mark.slow


def _definition(receiver: WebhookReceiver) -> dict:
    return {
        "name": "hook",
        "kind": "webhook",
        "settings": {
            "url": f"{receiver.url}?token={TOKEN}&page=1",
            "secret": SIGNING,
            "headers": {"Authorization": BEARER, "X-Team": "growth"},
        },
        "routes": [{"events": ["Order Completed"]}],
        "batch_size": 50,
    }


def _send(kirana: RunningKirana, http, message_id: str) -> None:
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "messageId": message_id,
        "timestamp": "2026-12-01T10:00:00Z",
    }
    answer = http.post("/v1/batch", json={"batch": [event]}, auth=(kirana.write_key, ""))
    assert answer.status_code == 200


def _wait_until_running(kirana: RunningKirana, fragment: str) -> None:
    """The deliverer restarts on its supervisor's next tick: wait for the new config."""
    supervisor = kirana.platform.services["destination-supervisor"]

    def running() -> bool:
        fingerprint, _ = supervisor._running.get("hook", ("", None))
        return fragment in fingerprint

    wait_for(running, what=f"the deliverer to run the replaced config ({fragment})")


def _assert_credentials_sent(attempt: dict) -> None:
    headers = {k.lower(): v for k, v in attempt["headers"].items()}
    assert headers["authorization"] == BEARER
    assert headers["x-team"] == "growth"
    assert parse_qs(urlsplit(attempt["path"]).query) == {"token": [TOKEN], "page": ["1"]}
    assert verify(
        SIGNING,
        attempt["timestamp"],
        attempt["body"],
        attempt["signature"],
        now=float(attempt["timestamp"]),
    )


@pytest.mark.parametrize("how", ["masks sent back", "credentials left out"])
def test_replace_without_secrets_keeps_them_working(
    kirana: RunningKirana, receiver: WebhookReceiver, how: str
) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        assert (
            http.post("/v1/destinations", json=_definition(receiver), headers=admin).status_code
            == 201
        )
        shown = http.get("/v1/destinations/hook", headers=admin).json()
        assert shown["settings"]["secret"] == "***"
        assert shown["settings"]["headers"] == {"Authorization": "***", "X-Team": "***"}
        assert shown["settings"]["url"] == f"{receiver.url}?token=***&page=1"
        body = {k: v for k, v in shown.items() if k != "health"}
        body["batch_size"] = 7  # the change the client meant to make
        if how == "credentials left out":
            for name in ("secret", "headers", "url"):
                del body["settings"][name]
        replaced = http.post(
            "/v1/destinations", params={"replace": "true"}, json=body, headers=admin
        )
        assert replaced.status_code == 201, replaced.text
        assert replaced.json()["batch_size"] == 7 and replaced.json()["settings"]["secret"] == "***"
        _wait_until_running(kirana, '"batch_size":7')
        _send(kirana, http, "after-replace")
        wait_for(lambda: len(receiver.accepted) >= 1, what="the delivery after the replace")
    _assert_credentials_sent(receiver.attempts[-1])


def test_new_values_replace_and_a_mask_with_nothing_behind_it_is_refused(
    kirana: RunningKirana, receiver: WebhookReceiver
) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    definition = _definition(receiver)
    with kirana.client() as http:
        fresh = {
            **definition,
            "name": "other",
            "settings": {**definition["settings"], "secret": "***"},
        }
        refused = http.post("/v1/destinations", json=fresh, headers=admin)
        assert refused.status_code == 422
        assert refused.json()["code"] == "invalid_destination"
        assert "settings.secret" in refused.json()["message"]
        assert http.post("/v1/destinations", json=definition, headers=admin).status_code == 201
        unknown = {
            **definition,
            "settings": {**definition["settings"], "headers": {"X-New": "***"}},
        }
        answer = http.post(
            "/v1/destinations", params={"replace": "true"}, json=unknown, headers=admin
        )
        assert answer.status_code == 422 and "settings.headers.X-New" in answer.json()["message"]
        changed_host = {
            **definition,
            "settings": {**definition["settings"], "url": "http://u:***@elsewhere/h"},
        }
        answer = http.post(
            "/v1/destinations", params={"replace": "true"}, json=changed_host, headers=admin
        )
        assert answer.status_code == 422 and "settings.url" in answer.json()["message"]
        # the refused replaces changed nothing: the stored credentials still work
        _send(kirana, http, "after-refusals")
        wait_for(lambda: len(receiver.accepted) >= 1, what="the delivery after the refusals")
        _assert_credentials_sent(receiver.attempts[-1])
        # a new value, sent in full, does replace the old one
        rotated = {
            **definition,
            "settings": {**definition["settings"], "secret": "rotated-secret-0123456789"},
        }
        answer = http.post(
            "/v1/destinations", params={"replace": "true"}, json=rotated, headers=admin
        )
        assert answer.status_code == 201
        _wait_until_running(kirana, "rotated-secret-0123456789")
        _send(kirana, http, "after-rotation")
        wait_for(lambda: len(receiver.accepted) >= 2, what="the delivery after the rotation")
    last = receiver.attempts[-1]
    assert verify(
        "rotated-secret-0123456789",
        last["timestamp"],
        last["body"],
        last["signature"],
        now=float(last["timestamp"]),
    )
