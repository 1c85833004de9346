"""kirana.redaction: credentials found by shape and by value, and nothing else lost.

The properties run over generated connection strings and URLs in every spelling the
platform accepts (libpq keyword/value with and without spaces and quotes, URI forms for
PostgreSQL, MySQL and Redis, user info and query-string tokens in HTTP URLs), each with
a random secret: the secret never appears in the output, in any encoding, and the host,
port, user, database and the other parameters do.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kirana.redaction import (
    MASK,
    MIN_LITERAL,
    install_log_scrubbing,
    redact,
    remember,
    scrub,
    secrets_in,
)

# Host, user and database names are lower-case; every secret carries "Z!" so that it can
# never be a piece of them (nor of the mask), and a find means a leak.
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12).map(
    lambda s: "n" + s
)
secret_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
secrets = st.text(secret_chars, max_size=20).map(lambda s: f"Z!{s}")
plain_secrets = st.text(st.characters(codec="ascii", exclude_categories=("Cc", "Zs")), max_size=20)
ports = st.integers(1, 65535)

KEYWORD_SPELLINGS = ["password={}", "password = {}", "password='{}'", "sslpassword={}"]


def _libpq_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@st.composite
def libpq_keyword_dsns(draw) -> tuple[str, str, list[str]]:
    host, user, db, secret = draw(names), draw(names), draw(names), draw(secrets)
    spelling = draw(st.sampled_from(KEYWORD_SPELLINGS))
    if "'" in spelling:
        credential = spelling.split("=")[0].rstrip() + "=" + _libpq_quoted(secret)
    elif any(c.isspace() or c in "'\"\\" for c in secret):  # must be quoted to be valid
        credential = spelling.split("=")[0].rstrip() + " = " + _libpq_quoted(secret)
    else:
        credential = spelling.format(secret)
    parts = [f"host={host}", f"user={user}", f"dbname={db}", "sslmode=prefer", credential]
    order = draw(st.permutations(parts))
    return " ".join(order), secret, [f"host={host}", f"user={user}", f"dbname={db}", "sslmode"]


@st.composite
def uri_dsns(draw) -> tuple[str, str, list[str]]:
    scheme = draw(st.sampled_from(["postgresql", "postgres", "mysql", "redis", "rediss"]))
    host, user, db, port = draw(names), draw(names), draw(names), draw(ports)
    secret = draw(secrets)
    if scheme.startswith("redis") and draw(st.booleans()):
        user = ""  # redis://:password@host
    encoded = quote(secret, safe="") if draw(st.booleans()) else secret.replace(" ", "%20")
    dsn = f"{scheme}://{user}:{encoded}@{host}:{port}/{db}?sslmode=require"
    kept = [f"{scheme}://{user}:", f"@{host}:{port}/{db}", "sslmode=require"]
    return dsn, secret, kept


@st.composite
def http_urls(draw) -> tuple[str, str, list[str]]:
    host, user, path = draw(names), draw(names), draw(names)
    secret = draw(secrets)
    encoded = quote(secret, safe="")
    param = draw(st.sampled_from(["token", "api_key", "apikey", "access_token", "key", "sig"]))
    form = draw(st.sampled_from(["userinfo", "query", "fragment"]))
    if form == "userinfo":
        url = f"https://{user}:{encoded}@{host}/{path}?page=2"
        kept = [f"https://{user}:", f"@{host}/{path}?page=2"]
    elif form == "fragment":
        url = f"https://{host}/{path}#{param}={encoded}&state=abc"
        kept = [f"https://{host}/{path}#{param}=", "&state=abc"]
    else:
        url = f"https://{host}/{path}?page=2&{param}={encoded}&lang=en"
        kept = [f"https://{host}/{path}?page=2&{param}=", "&lang=en"]
    return url, secret, kept


any_dsn = st.one_of(libpq_keyword_dsns(), uri_dsns(), http_urls())


def _leaks(secret: str, text: str) -> bool:
    return any(form in text for form in {secret, quote(secret, safe=""), quote(secret)})


@settings(max_examples=400, deadline=None)
@given(any_dsn)
def test_redact_hides_the_secret_and_keeps_the_rest(case: tuple[str, str, list[str]]) -> None:
    dsn, secret, kept = case
    shown = redact(dsn)
    assert not _leaks(secret, shown), shown
    assert MASK in shown
    for part in kept:
        assert part in shown, (part, shown)


@settings(max_examples=300, deadline=None)
@given(any_dsn, st.sampled_from(["{}", "could not connect to {}: refused", "error: '{}'"]))
def test_scrub_hides_a_dsn_echoed_inside_a_message(case, template: str) -> None:
    dsn, secret, _ = case
    assert not _leaks(secret, scrub(template.format(dsn)) or "")


@settings(max_examples=300, deadline=None)
@given(any_dsn)
def test_a_driver_echoing_the_bare_secret_is_scrubbed_by_value(case) -> None:
    """``missing "=" after "<secret>"``: no shape to find, so the known values catch it.

    (Values shorter than MIN_LITERAL are not replaced by value: they would garble every
    message; their shape still hides them wherever the DSN itself is echoed.)
    """
    dsn, secret, _ = case
    assume(len(secret) >= MIN_LITERAL)
    message = f'invalid dsn: missing "=" after "{secret}" in connection info string'
    assert secret not in (scrub(message, secrets_in(dsn)) or "")


@settings(max_examples=200, deadline=None)
@given(plain_secrets.filter(lambda s: len(s) >= 4 and not s.startswith(("'", '"'))))
def test_secrets_in_finds_the_value_a_driver_would_use(secret: str) -> None:
    assert secret in secrets_in(f"host=db password={secret} dbname=x")
    assert secret in secrets_in(f"postgresql://u:{quote(secret, safe='')}@db/x")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("host=h password=s3cret dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = s3cret dbname=d", "host=h password = *** dbname=d"),
        ("host=h password='s3 cret' dbname=d", "host=h password=*** dbname=d"),
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=s3cret&sslmode=require", None),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://u:s3cret@h/1", "rediss://u:***@h/1"),
        ("mysql://repl:s3/cr@et@db:3306/shop", "mysql://repl:***@db:3306/shop"),
        ("https://u:s3cret@h/x?token=s3cret&api_key=s3cret&a=1", None),
        ("{'password': 's3cret', 'host': 'h'}", "{'password': ***, 'host': 'h'}"),
    ],
)
def test_every_spelling(text: str, shown: str | None) -> None:
    out = redact(text)
    assert "s3" not in out and "cret" not in out
    if shown is not None:
        assert out == shown


def test_data_that_only_looks_like_a_keyword_is_kept() -> None:
    """``key=`` in a delivery error is the record's key, not a credential."""
    assert redact("record key=user-1 refused: sslmode=require") == (
        "record key=user-1 refused: sslmode=require"
    )


def test_log_records_are_scrubbed_whoever_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    install_log_scrubbing()
    remember({"bare-remembered-secret"})
    logger = logging.getLogger("some.driver")
    with caplog.at_level(logging.INFO):
        logger.info("connecting to %s", "postgresql://app:pw-in-url@db/x")
        logger.info("server said: bad password bare-remembered-secret")
        try:
            raise ConnectionError("cannot reach redis://:pw-in-exception@cache:6379")
        except ConnectionError:
            logger.exception("job failed")
    text = caplog.text
    assert "pw-in-url" not in text and "bare-remembered-secret" not in text
    assert "pw-in-exception" not in text
    assert "postgresql://app:***@db/x" in text and "redis://:***@cache:6379" in text
