"""Credentials never leave the server: find them in connection strings, URLs and messages.

Everything Kirana shows back (API answers, CLI output, stored ``last_error`` texts, log
lines) passes through here. Two complementary ways to find a credential:

* by its **shape**: the password of a URL's user info (``scheme://user:PASS@host``), a
  credential-named query parameter (``?token=…&api_key=…``) and a libpq/Redis keyword
  value (``password=x``, ``password = x``, ``password='x y'``), wherever they appear in
  a text, so an error message that echoes a DSN is caught too;
* by its **value**: drivers also echo fragments that have no shape (``missing "=" after
  "s3cret" in connection info string``), so the secrets a configuration holds are
  replaced literally as well (:func:`scrub` with ``known``), and remembered for the log
  records (:func:`install_log_scrubbing`).

A credential is replaced by :data:`MASK`; user names, hosts, ports, databases and every
other parameter stay, so the output still says where a connection goes. Pure: no I/O.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

MASK = "***"
"""What a set secret looks like in every answer (an unset one is ``null`` or absent)."""

MIN_LITERAL = 4
"""Shorter known values are not replaced literally: they would garble every message."""

_SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "auth",
    "credential",
    "signature",
    "private_key",
)
_SECRET_NAMES = frozenset({"pass", "key", "sig", "code", "write_key", "writekey"})


def is_secret_name(name: str, *, short_names: bool = True) -> bool:
    """True when a parameter or setting of this name holds a credential.

    ``short_names`` also counts ``key``, ``code``, ``sig``…: right for URL query
    parameters, too eager for free text (``key=user-1`` in a delivery error is data).
    """
    lowered = name.strip().lower()
    if short_names and lowered in _SECRET_NAMES:
        return True
    return any(word in lowered for word in _SECRET_WORDS)


# White space means ASCII white space, as for libpq and URL parsers: a no-break space
# inside a password is part of it.
# scheme://[user]:PASSWORD@ — the password runs to the last "@" of the token, so an
# unencoded "@" or "/" inside it is still masked whole (over-masking is the safe side).
_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/\s?#@'\"]*:)(?P<secret>\S*)@", re.ASCII
)
# ?name=value / &name=value inside a URL (or #name=value: OAuth's implicit flow puts
# tokens in the fragment); the value ends at "&", "#" or white space.
_QUERY = re.compile(
    r"(?P<head>[?&;#](?P<name>[A-Za-z0-9_.\-]+)=)"
    r"(?P<secret>[^&#\s'\"]*)",
    re.ASCII,
)
# name=value, name = value, name='quoted \' value' (libpq keyword/value syntax).
_KEYWORD = re.compile(
    r"(?P<head>(?<![\w.\-?&;#])(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*(?:'|$)|\"(?:[^\"\\]|\\.)*(?:\"|$)|[^\s'\"]\S*)",
    re.ASCII,
)
# 'name': 'value' / "name": "value" (a dict or JSON echoed in a message).
_MAPPING = re.compile(
    r"(?P<head>(?P<q>['\"])(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P=q)\s*:\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")",
    re.ASCII,
)


def _spans(text: str) -> list[tuple[int, int]]:
    """Where the credentials of ``text`` are, by shape, as (start, end) offsets.

    Each pattern runs only when the text holds the character it cannot match without
    (every log line passes here: most have none of them).
    """
    spans = []
    if "://" in text:
        for match in _USERINFO.finditer(text):
            if match.group("secret"):
                spans.append(match.span("secret"))
    patterns = []
    if "=" in text:
        patterns += [(_QUERY, True), (_KEYWORD, False)]
    if ":" in text and ("'" in text or '"' in text):
        patterns.append((_MAPPING, False))
    for pattern, short_names in patterns:
        for match in pattern.finditer(text):
            if match.group("secret") and is_secret_name(
                match.group("name"), short_names=short_names
            ):
                spans.append(match.span("secret"))
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    elif value[:1] in ("'", '"'):
        value = value[1:]
    return re.sub(r"\\(.)", r"\1", value)


def secrets_in(text: str) -> set[str]:
    """The credentials ``text`` holds, as written and as a driver would decode them."""
    found = set()
    for start, end in _spans(text):
        raw = text[start:end]
        found.update({raw, _unquoted(raw), unquote(raw), unquote(_unquoted(raw))})
    return {value for value in found if value}


def redact(text: str) -> str:
    """``text`` with every credential found by its shape replaced by :data:`MASK`."""
    out, last = [], 0
    for start, end in _spans(text):
        out.append(text[last:start])
        out.append(MASK)
        last = end
    out.append(text[last:])
    return "".join(out)


def scrub(text: str | None, known: Iterable[str] = ()) -> str | None:
    """A message safe to show: credentials by shape, and every ``known`` value, masked.

    Also remembers ``known`` so that log lines written later are scrubbed of them too
    (:func:`install_log_scrubbing`).
    """
    if text is None:
        return None
    values = known if isinstance(known, frozenset) else frozenset(known)
    remember(values)
    if any(value in text for value in values):  # substring tests are cheap; the regex less so
        pattern = _literal_pattern(values)
        if pattern is not None:
            text = pattern.sub(MASK, text)
    return redact(text)


@functools.lru_cache(maxsize=256)
def _literal_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """One regular expression for all known values, longest first (compiled once per set)."""
    usable = sorted((v for v in values if v and len(v) >= MIN_LITERAL), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, usable))) if usable else None


# -- values remembered for the log filter ------------------------------------------------

_REMEMBERED: frozenset[str] = frozenset()
_REMEMBERED_LIMIT = 10_000
_LOCK = threading.Lock()


def remember(values: Iterable[str]) -> None:
    """Secrets this process holds, so that log lines are scrubbed of them too."""
    global _REMEMBERED
    if isinstance(values, frozenset | set) and values <= _REMEMBERED:
        return  # the usual case: nothing new (checked in C, no loop)
    fresh = {v for v in values if v and len(v) >= MIN_LITERAL and v not in _REMEMBERED}
    if fresh:
        with _LOCK:
            if len(_REMEMBERED) + len(fresh) <= _REMEMBERED_LIMIT:
                _REMEMBERED = _REMEMBERED | fresh


def remembered() -> frozenset[str]:
    """Every secret :func:`remember` was given (one immutable set until the next one)."""
    return _REMEMBERED


def _scrubbed_record(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        known = remembered()
        message = record.getMessage()
        safe = scrub(message, known) or ""
        if safe != message:
            record.msg, record.args = safe, None
        if record.exc_info:  # formatters use a set exc_text as it is
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(text, known)
        return record

    make.kirana_scrubbing = True  # type: ignore[attr-defined]
    return make


def install_log_scrubbing() -> None:
    """Mask credentials in every log record of this process, whoever logs it.

    A record factory rather than a handler filter: uvicorn's and the drivers' loggers
    have handlers of their own, and the factory sees every record before any handler.
    The traceback text is formatted and scrubbed up front (``exc_text``), since drivers'
    exception messages are where DSNs show up. Idempotent.
    """
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "kirana_scrubbing", False):
        logging.setLogRecordFactory(_scrubbed_record(factory))
