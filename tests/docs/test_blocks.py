"""The example extractor of the documentation test: blocks, marks, JSON values, answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.docs.blocks import MarkError, expected_answers, json_values, parse_blocks

FENCE = "```"

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_documents = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_documents, min_size=1, max_size=5), st.booleans())
def test_every_json_value_of_a_block_is_read_in_order(values: list, pretty: bool) -> None:
    text = "\n".join(json.dumps(v, indent=2 if pretty else None) for v in values)
    assert json_values(text) == values


def test_an_excerpt_of_an_object_reads_as_that_object() -> None:
    assert json_values('"settings": {"url": "https://x", "secret": "***"}') == [
        {"settings": {"url": "https://x", "secret": "***"}}
    ]


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(json.JSONDecodeError):
        json_values('{"a": 1,}')


def test_marks_apply_to_the_next_block_only() -> None:
    markdown = "\n".join(
        [
            "<!-- doc-test: skip (needs a mail server) -->",
            "",
            f"{FENCE}sh",
            "kirana x",
            FENCE,
            "text",
            f"{FENCE}bash",
            "kirana y",
            FENCE,
            "<!-- doc-test: request PUT /v1/metrics/{key} -->",
            f"{FENCE}json",
            '{"key": "m"}',
            FENCE,
            "<!-- doc-test: request POST /v1/experiments/assign write-key -->",
            f"{FENCE}json",
            '{"userId": "u1"}',
            FENCE,
            f"{FENCE}python",
            "print(1)",
            FENCE,
        ]
    )
    skipped, plain, metric, assign = parse_blocks("d.md", markdown)
    assert (skipped.line, skipped.skip_reason) == (3, "needs a mail server")
    assert plain.skip_reason is None and plain.text == "kirana y"
    assert metric.request == ("PUT", "/v1/metrics/{key}") and not metric.with_write_key
    assert assign.request == ("POST", "/v1/experiments/assign") and assign.with_write_key


@pytest.mark.parametrize(
    "mark",
    [
        "<!-- doc-test: skip -->",  # no reason
        "<!-- doc-test: request /v1/x -->",  # no method
    ],
)
def test_a_mark_that_cannot_be_understood_fails_loudly(mark: str) -> None:
    with pytest.raises(MarkError):
        parse_blocks("d.md", f"{mark}\n{FENCE}json\n{{}}\n{FENCE}\n")


def test_a_mark_before_a_block_that_never_runs_fails_loudly() -> None:
    with pytest.raises(MarkError):
        parse_blocks("d.md", f"<!-- doc-test: skip (x) -->\n{FENCE}python\n1\n{FENCE}\n")


def test_documented_answers_are_tied_to_their_curl() -> None:
    text = "\n".join(
        [
            "curl http://a/ok",
            "curl http://a/bad",
            '# 422 {"code": "invalid_field",',
            '#      "message": "query.limit: must be <= 1000"}',
            "kirana sql 'SELECT 1'",
        ]
    )
    [answer] = expected_answers(text)
    assert (answer.curl_index, answer.status) == (1, 422)
    assert answer.body == {"code": "invalid_field", "message": "query.limit: must be <= 1000"}
