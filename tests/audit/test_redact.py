"""What an audit summary keeps of a request: never a credential or a person's id,
wherever in the body it sits and however it is written; names and settings stay."""

from __future__ import annotations

import json
import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kirana.audit.redact import REDACTED, is_sensitive_field, redact, summarise_body

SECRET = st.text(string.ascii_letters + string.digits, min_size=10, max_size=30)
PLAIN_NAMES = st.sampled_from(["name", "kind", "url", "settings", "key", "mode", "tables", "note"])
SECRET_NAMES = st.sampled_from(
    [
        "password",
        "secret",
        "write_key",
        "writeKey",
        "api_key",
        "X-Api-Key",
        "token",
        "Authorization",
        "dsn",
        "private_key",
        "pwd",
        "X-Auth",
        "X-Hub-Signature",
        "Cookie",
        "signing_secret",
        "identifier",
        "email",
        "userId",
    ]
)


@st.composite
def hidden(draw: st.DrawFn) -> tuple[object, str]:
    """A credential ``secret`` written one of the ways a request can carry it."""
    secret = draw(SECRET)
    way = draw(st.sampled_from(["field", "userinfo", "keyword", "kirana"]))
    if way == "field":
        return {draw(SECRET_NAMES): secret}, secret
    if way == "userinfo":
        at = draw(st.sampled_from(["", "@", "/", ":"]))  # unencoded, as people write them
        return f"postgresql://user:{secret[:5]}{at}{secret[5:]}@db.internal:5432/shop", secret
    if way == "keyword":
        return f"host=db.internal user=kirana password={secret} dbname=shop", secret
    return f"use kt_{secret} or wk_{secret}", secret


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.text(string.ascii_lowercase, max_size=8)
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[object, list[str]]:
    """A JSON body with credentials hidden at random depths among harmless fields."""
    secrets: list[str] = []

    def build(depth: int) -> object:
        choice = draw(st.integers(0, 3 if depth < 4 else 1))
        if choice == 0:
            return draw(JSON_LEAVES)
        if choice == 1:
            value, secret = draw(hidden())
            secrets.append(secret)
            return value
        if choice == 2:
            return [build(depth + 1) for _ in range(draw(st.integers(0, 3)))]
        return {draw(PLAIN_NAMES): build(depth + 1) for _ in range(draw(st.integers(0, 3)))}

    return build(0), secrets


@settings(max_examples=300, deadline=None)
@given(documents())
def test_no_credential_survives_redaction(doc: tuple[object, list[str]]) -> None:
    body, secrets = doc
    out = json.dumps(redact(body))
    raw = summarise_body(json.dumps(body).encode(), "application/json", truncated=False)
    for secret in secrets:
        for text in (out, json.dumps(raw)):
            assert secret not in text
            assert secret[5:] not in text  # nor the part after an unencoded separator


def test_names_settings_and_hosts_stay() -> None:
    body = {
        "name": "crm",
        "key": "home-ranking",
        "settings": {"url": "https://u:pw123456@hooks.example.com/x", "secret": "abc"},
    }
    assert redact(body) == {
        "name": "crm",
        "key": "home-ranking",
        "settings": {"url": f"https://u:{REDACTED}@hooks.example.com/x", "secret": REDACTED},
    }


def test_big_and_non_json_bodies_are_described_not_copied() -> None:
    assert summarise_body(b"a,b\n1,2\n", "text/csv", truncated=False) == {
        "bytes": 8,
        "content_type": "text/csv",
        "truncated": False,
    }
    many = redact({"items": list(range(500)), "text": "x" * 5000})
    assert len(many["items"]) == 51 and len(many["text"]) < 300


def test_which_fields_are_sensitive() -> None:
    assert all(map(is_sensitive_field, ["password", "writeKey", "X-Api-Key", "email", "dsn"]))
    assert not any(map(is_sensitive_field, ["name", "key", "kind", "url", "overlap_seconds"]))


@settings(max_examples=100, deadline=None)
@given(
    header=st.text(string.ascii_letters + "-", min_size=1, max_size=20),
    secret=SECRET,
)
def test_every_header_value_is_masked_whatever_its_name(header: str, secret: str) -> None:
    """A header may carry a credential under any name (`X-Team-Auth`, `X-Sig`, …)."""
    assume(secret not in header)
    body = {"name": "hook", "settings": {"url": "https://h.example/x", "headers": {header: secret}}}
    summary = redact(body)
    assert secret not in json.dumps(summary)
    assert summary["settings"]["headers"] == {header: REDACTED}
    assert summary["settings"]["url"] == "https://h.example/x"
