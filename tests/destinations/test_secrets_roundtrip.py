"""Sending back what was shown changes nothing; sending a new credential changes only it.

Property over generated destinations of every kind that holds credentials, with random
secrets in every place one can be (signing secret, write key, SMTP password, header
values, URL user info and query tokens, libpq ``password=`` and URI DSNs).
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.destinations.config import parse_destination, redacted
from kirana.destinations.secrets import keep_stored_secrets, masks_left
from kirana.redaction import MASK

secrets = st.text(
    st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=16, max_size=30
).map(lambda s: f"Zz{s}")
hosts = st.text("abcdefghij", min_size=1, max_size=8).map(lambda s: f"h{s}")


def _libpq(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@st.composite
def destinations(draw) -> dict:
    kind = draw(st.sampled_from(["webhook", "segment", "postgres", "redis", "email"]))
    secret, host = draw(secrets), draw(hosts)
    if kind == "webhook":
        url = draw(
            st.sampled_from(
                [
                    f"https://{host}/hook",
                    f"https://app:{quote(secret, safe='')}@{host}/hook",
                    f"https://{host}/hook?token={quote(secret, safe='')}&page=2",
                ]
            )
        )
        header = {"Authorization": f"Bearer {draw(secrets)}", "X-Team": draw(hosts)}
        settings_ = {"url": url, "secret": secret, "headers": header}
    elif kind == "segment":
        settings_ = {"url": f"https://{host}", "write_key": secret}
    elif kind == "postgres":
        dsn = draw(
            st.sampled_from(
                [
                    f"host={host} user=app password={_libpq(secret)} dbname=shop",
                    f"postgresql://app:{quote(secret, safe='')}@{host}:5432/shop",
                ]
            )
        )
        settings_ = {"dsn": dsn, "table": "t"}
    elif kind == "redis":
        settings_ = {"url": f"rediss://:{quote(secret, safe='')}@{host}:6380/0"}
    else:
        settings_ = {
            "host": host,
            "from_address": "shop@example.com",
            "subject": "hi",
            "body": "hello",
            "username": "mailer",
            "password": secret,
        }
    return {"name": "d", "kind": kind, "settings": settings_, "batch_size": 10}


@settings(max_examples=300, deadline=None)
@given(destinations(), st.integers(1, 1000))
def test_sending_back_the_shown_answer_keeps_every_credential(raw: dict, batch: int) -> None:
    stored = parse_destination(raw)
    shown = redacted(stored)
    assert MASK in str(shown["settings"])
    sent = {**shown, "batch_size": batch}
    merged = keep_stored_secrets(sent, stored.kind, stored.settings)
    assert masks_left(merged["settings"]) is None
    again = parse_destination(merged)
    assert again.settings == stored.settings and again.batch_size == batch


@settings(max_examples=200, deadline=None)
@given(destinations(), secrets)
def test_a_new_credential_replaces_only_itself(raw: dict, new: str) -> None:
    stored = parse_destination(raw)
    field, value = {
        "webhook": ("secret", new),
        "segment": ("write_key", new),
        "email": ("password", new),
        "postgres": ("dsn", f"host=other user=app password={_libpq(new)} dbname=shop"),
        "redis": ("url", f"rediss://:{quote(new, safe='')}@other:6380/0"),
    }[stored.kind]
    sent = redacted(stored)
    sent["settings"][field] = value
    merged = parse_destination(keep_stored_secrets(sent, stored.kind, stored.settings))
    assert merged.settings[field] == value
    others = {k: v for k, v in merged.settings.items() if k != field}
    assert others == {k: v for k, v in stored.settings.items() if k != field}
