"""A stored credential never follows a destination to another server.

Anyone who may replace a destination could otherwise point it at a server of theirs and
send the masks back: Kirana would then deliver the stored signing secret, header values,
URL token or password there, and the write-only secret would be read after all.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.destinations.secrets import (
    keep_stored_secrets,
    masked_settings,
    masks_left,
    secret_values,
)

hosts = st.from_regex(r"[a-z]{1,10}\.(example|test)\.(com|org)", fullmatch=True)
secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=24)


def _stored(host: str, secret: str) -> dict:
    return {
        "url": f"https://{host}/hook?token=t{secret}&page=1",
        "secret": f"s{secret}",
        "headers": {"Authorization": f"Bearer h{secret}", "X-Team": "growth"},
    }


@settings(max_examples=200, deadline=None)
@given(old=hosts, new=hosts, secret=secrets, send_masks=st.booleans())
def test_secrets_are_kept_only_for_the_same_server(
    old: str, new: str, secret: str, send_masks: bool
) -> None:
    stored = _stored(old, secret)
    shown = masked_settings(stored)
    replacing = dict(shown) if send_masks else {"batch_note": "changed"}
    replacing["url"] = shown["url"].replace(old, new)
    result = keep_stored_secrets({"kind": "webhook", "settings": replacing}, "webhook", stored)[
        "settings"
    ]
    leaked = {v for v in secret_values(stored) if v in json.dumps(result)}
    if new == old:
        assert result["secret"] == stored["secret"]
        assert result["url"] == stored["url"]
        assert result["headers"]["Authorization"] == stored["headers"]["Authorization"]
    else:
        assert leaked == set()
        if send_masks:
            assert masks_left(result) is not None  # the masks are refused, naming a field


def test_a_changed_smtp_host_does_not_get_the_stored_password() -> None:
    stored = {"host": "mail.example.com", "port": 587, "password": "pw-0123456789"}
    moved = {"host": "evil.example.org", "port": 587, "password": "***"}
    result = keep_stored_secrets({"kind": "email", "settings": moved}, "email", stored)
    assert result["settings"]["password"] == "***"
    assert "another server" in (masks_left(result["settings"]) or "")
    same = {"port": 587, "password": "***"}  # host left out: keeps the stored one
    kept = keep_stored_secrets({"kind": "email", "settings": same}, "email", stored)
    assert kept["settings"] == stored
