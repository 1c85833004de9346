"""The runnable examples of README.md and docs/*.md: fenced blocks and their doc-test marks.

A block is fenced with three backticks and a language. ``sh``, ``bash`` and ``console``
blocks are shell examples; ``json`` blocks are JSON examples. An HTML comment on the line
right before a block (blank lines allowed in between) tells the documentation test what
else to do with it:

* ``<!-- doc-test: skip (reason) -->`` — not run; the test lists it with its reason;
* ``<!-- doc-test: request METHOD /v1/path/{field} -->`` — a JSON block holding request
  bodies: each JSON value in it is sent to that route (``{field}`` filled from the value)
  with an admin token, or with the write key when the mark ends in ``write-key``.

Everything here is pure text processing, so it is cheap to test on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = frozenset({"sh", "bash", "console"})
RUNNABLE_LANGUAGES = SHELL_LANGUAGES | {"json"}

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*doc-test:\s*(?P<verb>skip|request)\b\s*(?P<rest>.*?)\s*-->\s*$")
_EXPECTED_STATUS = re.compile(r"^#\s*(?P<status>[1-5]\d\d)\s+(?P<body>[\[{].*)$")


@dataclass(frozen=True)
class Block:
    """One fenced example: where it is, its language, its text and its mark (if any)."""

    path: str
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    skip_reason: str | None = None
    request: tuple[str, str] | None = None  # (method, path template)
    with_write_key: bool = False  # the request authenticates with the write key

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


class MarkError(ValueError):
    """A doc-test mark that cannot be understood (so nothing is skipped by accident)."""


def parse_blocks(path: str, markdown: str) -> list[Block]:
    """Every runnable fenced block of ``markdown``, in order, with the mark before it."""
    lines = markdown.split("\n")
    blocks: list[Block] = []
    mark: tuple[str, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is None:
            found = _MARK.match(line.strip())
            if found:
                mark = (found["verb"], found["rest"])
            elif line.strip():
                mark = None  # a mark applies only to the block right after it
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        language = fence[1].lower()
        if language in RUNNABLE_LANGUAGES:
            blocks.append(
                _block(path, index + 1, language, "\n".join(lines[index + 1 : end]), mark)
            )
        elif mark is not None:
            raise MarkError(f"{path}:{index + 1}: a doc-test mark before a {language!r} block")
        mark = None
        index = end + 1
    return blocks


def _block(path: str, line: int, language: str, text: str, mark: tuple[str, str] | None) -> Block:
    if mark is None:
        return Block(path, line, language, text)
    verb, rest = mark
    if verb == "skip":
        reason = rest.strip().removeprefix("(").removesuffix(")").strip()
        if not reason:
            raise MarkError(f"{path}:{line}: `doc-test: skip` needs a (reason)")
        return Block(path, line, language, text, skip_reason=reason)
    parts = rest.split()
    write_key = parts[2:] == ["write-key"]
    if language != "json" or len(parts) != 2 + write_key or not parts[1].startswith("/"):
        raise MarkError(
            f"{path}:{line}: `doc-test: request METHOD /path [write-key]` marks a json block"
        )
    return Block(
        path, line, language, text, request=(parts[0].upper(), parts[1]), with_write_key=write_key
    )


def json_values(text: str) -> list[object]:
    """The JSON values of a block, one after another (JSON lines or pretty-printed).

    A block that shows an excerpt of an object (``"settings": {...}``) is read as the
    object it was cut from, so its JSON is still checked.
    """
    try:
        return _values(text)
    except json.JSONDecodeError:
        return [_values("{" + text + "}")[0]]


def _values(text: str) -> list[object]:
    decoder = json.JSONDecoder()
    values, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return values
        value, position = decoder.raw_decode(text, position)
        values.append(value)


@dataclass(frozen=True)
class ExpectedAnswer:
    """An answer a shell example shows in comments under a curl: ``# 422 {...}``."""

    curl_index: int  # which curl of the block (0-based)
    status: int
    body: object


def expected_answers(text: str) -> list[ExpectedAnswer]:
    """The answers a shell block documents for its curl commands, in order."""
    answers: list[ExpectedAnswer] = []
    lines = text.split("\n")
    curl_index = -1
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        index += 1
        if stripped.startswith("curl "):
            curl_index += 1
            continue
        found = _EXPECTED_STATUS.match(stripped)
        if not found or curl_index < 0:
            continue
        body = found["body"]
        while index < len(lines) and lines[index].strip().startswith("#"):
            body += " " + lines[index].strip().removeprefix("#").strip()
            index += 1
        answers.append(ExpectedAnswer(curl_index, int(found["status"]), json.loads(body)))
    return answers


def documents(root: Path) -> list[Path]:
    """README.md and docs/*.md: the documents whose examples must work."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
