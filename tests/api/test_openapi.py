"""The OpenAPI document is valid and complete, and every error is ``{code, message}``.

Over the real app (FastAPI's TestClient) on a platform in a temporary data dir. The fuzz of
every route against this document is ``test_fuzz_routes.py``; these are the properties of the
document itself and the regression tests for the classes of 500 it found.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kirana.api.app import create_app
from kirana.api.errors import validation_error_response
from kirana.config import load_settings
from kirana.runtime import Platform

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = Path(tmp_path_factory.mktemp("openapi")) / "data"
    p = Platform.open(load_settings(data), role="all")
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    _, admin = platform.store.create_token("openapi-admin", "admin")
    app = create_app(platform, manage_lifecycle=False)
    with TestClient(app, raise_server_exceptions=False) as http:
        http.headers["Authorization"] = f"Bearer {admin}"
        yield http


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only local references are expected"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI meta-schema; raises naming the first problem
    loaded = [result.ok() for result in schema.get_all_operations()]  # each one resolves
    assert len(loaded) == sum(1 for _ in operations(document))


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    found = set(refs(document))
    assert "#/components/schemas/Error" in found
    for ref in found:
        resolve(document, ref)
    assert "$defs" not in json.dumps(document), "msgspec $defs must move to components"


def test_every_operation_declares_its_errors_with_the_error_schema(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        if operation.get("security"):
            assert "401" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if operation.get("requestBody") or operation.get("parameters"):
            assert {"400", "422"} & set(responses), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema.get("$ref") in (
                    "#/components/schemas/Error",
                    "#/components/schemas/ErrorBody",
                ), (method, path, status)


def test_free_form_bodies_are_described(document: dict[str, Any]) -> None:
    """A body typed only as "an object" says what goes in it (or points at the docs)."""
    for method, path, operation in operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        for media in body["content"].values():
            schema = media["schema"]
            if "$ref" in schema:
                schema = resolve(document, schema["$ref"])
            free_form = schema.get("type") == "object" and not schema.get("properties")
            if free_form:
                assert body.get("description") or schema.get("description"), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/no-such-thing", 404, "not_found"),
        ("DELETE", "/v1/status", 405, "method_not_allowed"),
        ("GET", "/v1/quarantine?limit=5000", 422, "invalid_field"),
        ("GET", "/v1/quarantine?limit=many", 422, "invalid_field"),
    ],
)
def test_errors_made_by_the_framework_are_code_and_message(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]
    if status in (404, 405):
        assert f"{method} {path}" in body["message"]


def test_a_validation_message_names_the_field_and_the_rule(client: TestClient) -> None:
    too_many = client.get("/v1/quarantine", params={"limit": 5000}).json()
    assert too_many["message"] == "query.limit: must be <= 1000"
    assert too_many["field"] == "query.limit"
    not_a_number = client.get("/v1/quarantine", params={"limit": "many"}).json()
    assert not_a_number["message"] == "query.limit: must be an integer"
    unparsable = client.post(
        "/v1/privacy/erasures", content=b"\xff{", headers={"Content-Type": "application/json"}
    )
    assert unparsable.status_code == 422
    assert unparsable.json()["message"].startswith("body: must be JSON in UTF-8")
    deep = client.post("/v1/privacy/erasures", content=b"[" * 100_000 + b"]" * 100_000)
    assert deep.status_code == 422 and deep.json()["field"] == "body"
    broken = client.post(
        "/v1/privacy/erasures", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["message"].startswith("body: is not valid JSON (character 1: ")


@given(
    ctx=st.dictionaries(
        st.text(max_size=5),
        st.one_of(
            st.integers(),
            st.text(),
            st.builds(ValueError, st.text()),
            st.builds(OverflowError, st.text()),
            st.sets(st.integers(), max_size=3),
            st.binary(max_size=5),
        ),
        max_size=3,
    ),
    loc=st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)
def test_any_validation_error_renders_as_json(ctx: dict[str, Any], loc: list[Any]) -> None:
    """pydantic's ``ctx`` may hold an exception object (a validator's ValueError): the answer
    must still be JSON, not a 500 while rendering the 422."""
    error = {"type": "value_error", "loc": tuple(loc), "msg": "Value error, bad", "ctx": ctx}
    response = validation_error_response(RequestValidationError([error]))
    body = json.loads(response.body)
    assert response.status_code == 422 and body["code"] == "invalid_field"
    assert body["message"].startswith(body["field"] + ": ")


def integer_query_parameters(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            types = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
            if parameter["in"] == "query" and "integer" in types:
                found.append((method, path, parameter["name"]))
    return found


def test_any_integer_in_any_integer_query_parameter_is_answered_without_a_500(
    client: TestClient, document: dict[str, Any]
) -> None:
    """SQLite takes at most 64-bit integers (OverflowError beyond): every integer query
    parameter is bounded, so any integer gets a 2xx/4xx answer, never a 500. Every
    parameter the document lists gets its turn, routes added later included."""
    parameters = integer_query_parameters(document)
    assert len(parameters) > 10
    for method, path, name in parameters:
        check_integer_parameter(client, method, path, name)


def check_integer_parameter(client: TestClient, method: str, path: str, name: str) -> None:
    url = path.replace("{", "").replace("}", "")  # path parameters become their own names

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=st.integers())
    @example(value=2**63)  # one past SQLite's largest integer
    @example(value=-(2**63) - 1)
    @example(value=10**30)
    def check(value: int) -> None:
        response = client.request(method.upper(), url, params={name: value})
        assert response.status_code < 500, (method, path, name, value, response.text)
        if response.status_code >= 400:
            assert {"code", "message"} <= set(response.json()), response.text

    check()


def test_an_unexpected_exception_answers_internal_error_without_its_text(
    platform: Platform,
) -> None:
    app = create_app(platform, manage_lifecycle=False)

    def fails() -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    app.add_api_route("/v1/fails", fails)
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/v1/fails")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/v1/destinations", {"name": "status", "kind": "webhook"}, "body.name", "reserved"),
        (
            "/v1/syncs",
            {"name": "s", "source": {"sql": "SELECT 1", "audience": "a"}, "key": "k"},
            "body.source",
            "exactly one",
        ),
    ],
)
def test_a_validator_s_own_error_is_a_422_naming_the_field(
    client: TestClient, path: str, body: dict[str, Any], field: str, words: str
) -> None:
    """A validator raising ValueError puts the exception object in pydantic's ``ctx``; the
    422 carried it as is and rendering it failed: a 500 (issue 15)."""
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] == "invalid_field"
    assert any(e["field"] == field and words in e["message"] for e in answer["errors"])


def test_free_form_answers_say_where_their_fields_are_described(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if not status.startswith("2") or not schema:
                continue
            items = schema.get("items", {}) if schema.get("type") == "array" else schema
            if "$ref" not in items and not items.get("properties"):
                assert response["description"] != "Successful Response", (method, path)


@pytest.mark.parametrize(
    ("name", "table", "field"),
    [
        ("%2E%2E", "events", "path.name"),
        ("shop", "%2E%2E", "path.table"),
        ("..x", "t", "path.name"),
    ],
)
def test_a_lake_path_cannot_leave_the_replicated_folder(
    client: TestClient, name: str, table: str, field: str
) -> None:
    """`..` as the source made lake/replicated/../events the lake's events table."""
    response = client.get(f"/v1/replication/sources/{name}/tables/{table}/changes")
    assert response.status_code == 422 and response.json()["field"] == field, response.text
