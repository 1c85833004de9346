"""Text a store cannot hold, in any parameter or body of any route: a 4xx, never a 500.

PostgreSQL refuses NUL (U+0000) in ``text``: with the profile store on PostgreSQL a NUL in
``GET /v1/profiles/{identifier}``, an audience name or an erasure's identifier was a 500.
The property covers the class: every string path and query parameter of every operation in
the OpenAPI document (routes added later included), and JSON bodies, against a platform whose
profile store is a real PostgreSQL schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kirana.api.app import create_app
from kirana.config import load_settings
from kirana.runtime import Platform
from tests.api.test_openapi import operations
from tests.identity.conftest import POSTGRES_DSN, postgres_reason

pytestmark = pytest.mark.server

#: the collector judges these itself, event by event (tests/api/test_hostile_tracking.py)
COLLECTOR_PATHS = {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group"}
COLLECTOR_PATHS |= {"/v1/alias", "/v1/batch", "/v1/import"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"test_text_{uuid.uuid4().hex[:12]}"
    data = Path(tmp_path_factory.mktemp("text")) / "data"
    profiles = {"backend": "postgres", "postgres_dsn": POSTGRES_DSN, "postgres_schema": schema}
    platform = Platform.open(load_settings(data, profiles=profiles), role="all")
    _, admin = platform.store.create_token("admin", "admin")
    try:
        app = create_app(platform, manage_lifecycle=False)
        with TestClient(app, raise_server_exceptions=False) as http:
            http.headers["Authorization"] = f"Bearer {admin}"
            yield http
    finally:
        platform.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def text_parameters(client: TestClient) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) of every string path or query parameter."""
    found = []
    for method, path, operation in operations(client.get("/openapi.json").json()):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            types = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
            if parameter["in"] in ("path", "query") and "string" in types:
                found.append((method, path, parameter["in"], parameter["name"]))
    return found


def with_nul() -> st.SearchStrategy[str]:
    return st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=8), st.text(max_size=8))


def _url(path: str, where: str, name: str, value: str) -> str:
    """``path`` with every path parameter named after itself except ``name`` (if a path one)."""
    parts = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            own = segment[1:-1]
            segment = quote(value if where == "path" and own == name else own, safe="")
        parts.append(segment)
    return "/".join(parts)


def assert_refused_cleanly(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert body["code"] and body["message"], body


def test_nul_in_any_text_parameter_is_refused_not_a_500(
    client: TestClient, text_parameters: list[tuple[str, str, str, str]]
) -> None:
    assert len(text_parameters) > 20  # the document lists them (profiles, content, …)
    for method, path, where, name in text_parameters:
        check_parameter(client, method, path, where, name)


def check_parameter(client: TestClient, method: str, path: str, where: str, name: str) -> None:
    """A few texts with a NUL in this one parameter (every parameter gets its turn)."""

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=with_nul())
    def check(value: str) -> None:
        params = {name: value} if where == "query" else {}
        if path == "/v1/personalize":  # needs an identity before it looks at anything else
            params = {"placement": "home", "userId": "u1", **params}
        response = client.request(method.upper(), _url(path, where, name, value), params=params)
        assert_refused_cleanly(response)

    check()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), value=with_nul())
def test_nul_in_any_json_body_is_refused_not_a_500(
    client: TestClient, data: st.DataObject, value: str
) -> None:
    document = client.get("/openapi.json").json()
    bodies = sorted(
        (method, path)
        for method, path, operation in operations(document)
        if "requestBody" in operation and path not in COLLECTOR_PATHS
    )
    method, path = data.draw(st.sampled_from(bodies))
    field = data.draw(st.sampled_from(["identifier", "name", "key", "sql", "to_run"]))
    url = _url(path, "", "", "")
    response = client.request(method.upper(), url, json={field: value, "kind": "webhook"})
    assert_refused_cleanly(response)
    assert response.json()["code"] == "invalid_text"


def test_a_query_parameter_no_route_reads_is_ignored(client: TestClient) -> None:
    """Only what a route reads is held to the limits (a 422 for the rest would be a status
    the route does not declare, for a value that goes nowhere)."""
    assert client.get("/v1/status", params={"junk": "a\x00b"}).status_code == 200
    refused = client.get("/v1/quarantine", params={"source_id": "a\x00b"})
    assert refused.status_code == 422 and "query.source_id" in refused.json()["message"]
