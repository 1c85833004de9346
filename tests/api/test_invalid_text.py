"""Text that is not Unicode never makes the other APIs answer 500 (issue 15): lone
surrogates in JSON bodies get ``400 invalid_text`` naming the field; bytes that are not
UTF-8 in paths and queries get a clear 4xx or a correct answer."""

from __future__ import annotations

import json
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.api.text_guard import lone_surrogate_path
from tests.conftest import RunningKirana

HOSTILE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    | st.sampled_from(["a", "é", "\x00", "😀"]),
    min_size=1,
    max_size=6,
)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _lone(text: str) -> bool:
    """Whether ``text`` still holds a lone surrogate once written as JSON and read back
    (a high and a low surrogate side by side read back as one valid character)."""
    return lone_surrogate_path(json.loads(json.dumps(text))) is not None


def _check(response, text: str, field: str) -> None:
    assert response.status_code < 500, response.text
    if _lone(text):
        body = response.json()
        assert response.status_code == 400 and body["code"] == "invalid_text", body
        assert field in body["message"]


@pytest.fixture
def started(kirana: RunningKirana) -> RunningKirana:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    variations = [{"key": "a"}, {"key": "b"}]
    with kirana.client() as http:
        created = http.post(
            "/v1/experiments", json={"key": "e1", "variations": variations}, headers=admin
        )
        assert created.status_code == 201, created.text
        assert http.post("/v1/experiments/e1/start", headers=admin).status_code == 200
    return kirana


def test_lone_surrogates_in_json_bodies_are_400_naming_the_field(started: RunningKirana) -> None:
    kirana = started
    admin = {"Authorization": f"Bearer {kirana.admin_token}", "Content-Type": "application/json"}
    key = {"X-Write-Key": kirana.write_key, "Content-Type": "application/json"}
    counter = iter(range(10**6))

    @SETTINGS
    @given(text=HOSTILE_TEXT, where=st.sampled_from(["userId", "attributes", "context"]))
    def assign(text: str, where: str) -> None:
        body = {"userId": text} if where == "userId" else {"userId": "u", where: {"k": text}}
        with kirana.client() as http:
            response = http.post("/v1/experiments/assign", content=json.dumps(body), headers=key)
        _check(response, text, f"body.{where}")

    @SETTINGS
    @given(text=HOSTILE_TEXT, field=st.sampled_from(["key", "name"]))
    def create(text: str, field: str) -> None:
        body = {"key": f"k{next(counter)}", "variations": [{"key": "a"}, {"key": "b"}]}
        body[field] = text
        with kirana.client() as http:
            response = http.post("/v1/experiments", content=json.dumps(body), headers=admin)
        _check(response, text, f"body.{field}")

    assign()
    create()


def test_bytes_that_are_not_utf8_in_urls_never_fail_with_500(started: RunningKirana) -> None:
    kirana = started
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    key = {"X-Write-Key": kirana.write_key}

    @SETTINGS
    @given(raw=st.binary(min_size=1, max_size=8))
    def probe(raw: bytes) -> None:
        text = quote_from_bytes(raw, safe=b"")
        with kirana.client() as http:
            for url, headers in [
                (f"/v1/profiles/{text}", admin),
                (f"/v1/profiles/u?type={text}", admin),
                (f"/v1/personalize?placement={text}&userId={text}&itemId={text}", key),
                (f"/api/features/{text}", {}),
                (f"/v1/experiments/{text}", admin),
            ]:
                response = http.get(url, headers=headers)
                assert response.status_code < 500, (url, response.text)
                if response.status_code >= 400:
                    assert {"code", "message"} <= set(response.json()), (url, response.text)

    probe()
