"""A bounded property-based fuzz of every route the OpenAPI document lists (schemathesis).

One real server over a temporary data dir with a little of everything in it (a source, a
metric and a running experiment, a flag, content, a destination, an audience, events), so
requests reach past the "not found" answers into the services. Every operation gets valid
and invalid inputs derived from its schema, with an admin token (15 examples each), a viewer
token and none (3 each); every answer must be no 500, a declared status, a declared content
type and a body matching the declared schema. Routes added later are fuzzed too: the list
comes from ``/openapi.json``. About 2.5-3 minutes on a 2-core machine.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kirana.config import load_settings
from tests.conftest import RunningKirana, _running

pytestmark = pytest.mark.slow


def no_internal_error(
    ctx: object, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """No 500. Another 5xx is an answer a route declares (502 when a replication source's
    database or folder fails, 503 when the event log cannot write): the status check holds
    those to the document; schemathesis's own server-error check refuses every 5xx."""
    if response.status_code == 500:
        raise AssertionError(f"500 Internal Server Error: {response.text[:500]}")


CHECKS = [
    no_internal_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TWO_ARMS = [{"key": "control"}, {"key": "treatment"}]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningKirana]:
    """A platform with a little data of every kind; the fuzz may change or erase it."""
    data = Path(tmp_path_factory.mktemp("fuzz")) / "data"
    running = _running(load_settings(data, lake={"linger_seconds": 0.2}), "all")
    kirana = next(running)
    _seed(kirana)
    yield kirana
    next(running, None)


def _seed(kirana: RunningKirana) -> None:
    kirana.platform.store.create_source("spare")  # rotated, disabled, deleted by the fuzz
    with kirana.client() as http:
        http.headers["Authorization"] = f"Bearer {kirana.admin_token}"
        answers = [
            http.put("/v1/metrics/orders", json={"type": "count", "event": "Order Completed"}),
            http.post(
                "/v1/experiments",
                json={"key": "hero", "variations": TWO_ARMS, "metrics": ["orders"]},
            ),
            http.post("/v1/experiments/hero/start"),
            http.put(
                "/v1/flags/dark-mode",
                json={"default": "off", "rules": [{"type": "force", "value": "on"}]},
            ),
            http.post(
                "/v1/content/widgets",
                json={
                    "key": "hero",
                    "kind": "banner",
                    "max_items": 1,
                    "items": [{"key": "a", "title": "A", "template": "card"}],
                },
            ),
            http.post(
                "/v1/content/placements",
                json={"key": "home_feed", "max_widgets": 1, "widgets": ["hero"]},
            ),
            http.post(
                "/v1/destinations",
                json={
                    "name": "hook",
                    "kind": "webhook",
                    "settings": {"url": "http://127.0.0.1:9/", "secret": "s" * 32},
                },
            ),
            http.put(
                "/v1/audiences/buyers",
                json={"conditions": {"event": "Order Completed", "at_least": 1, "within_days": 30}},
            ),
        ]
        for answer in answers:
            assert answer.status_code < 300, answer.text
        events = [
            {"type": "track", "event": "Order Completed", "userId": f"u{i}", "messageId": f"m{i}"}
            for i in range(5)
        ]
        tracked = http.post("/v1/batch", json={"batch": events}, headers=_write_key(kirana))
        assert tracked.status_code == 200, tracked.text
    kirana.drain()


def _write_key(kirana: RunningKirana) -> dict[str, str]:
    basic = base64.b64encode(f"{kirana.write_key}:".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


@pytest.fixture(scope="module")
def openapi_document(fuzzed: RunningKirana) -> dict:
    return httpx.get(f"{fuzzed.url}/openapi.json").json()


def _auth(operation: APIOperation, kirana: RunningKirana, role: str) -> dict[str, str]:
    """The credentials the operation takes: a write key, or a token of ``role``."""
    security = operation.definition.raw.get("security") or [{}]
    if "writeKeyBasic" in security[0]:
        return _write_key(kirana)
    token = {"admin": kirana.admin_token, "viewer": kirana.viewer_token}.get(role)
    return {"Authorization": f"Bearer {token}"} if token else {}


#: path parameters naming what ``_seed`` made, by path prefix: a run with these reaches the
#: services behind the "not found" answers (longest prefix first)
KNOWN_PATH_PARAMETERS = [
    ("/v1/experiments/{key}/plots", {"key": "hero", "metric": "orders"}),
    ("/v1/experiments/", {"key": "hero"}),
    ("/v1/metrics/", {"key": "orders"}),
    ("/v1/flags/", {"key": "banner"}),
    ("/v1/content/placements/", {"key": "home_feed"}),
    ("/v1/content/widgets/{widget}", {"widget": "hero", "key": "a"}),
    ("/v1/content/widgets/", {"key": "hero"}),
    ("/v1/destinations/", {"name": "hook"}),
    ("/v1/audiences/", {"name": "buyers"}),
    ("/v1/profiles/", {"identifier": "u1"}),
    ("/v1/sources/", {"name": "spare"}),
]


def known_path_parameters(path: str, kirana: RunningKirana) -> dict[str, str] | None:
    if "{" not in path:
        return None
    if path == "/api/features/{client_key}":
        return {"client_key": kirana.write_key}
    return next((known for prefix, known in KNOWN_PATH_PARAMETERS if path.startswith(prefix)), None)


def fuzz(kirana: RunningKirana, document: dict, role: str, max_examples: int) -> list[str]:
    """Every operation with valid and with invalid inputs, and (when ``_seed`` made what its
    path names) valid inputs for that; the failures, one entry each."""
    runs, deletes = [], []  # deleting what was seeded waits until everything else ran
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        operation = result.ok()
        runs += [(operation, mode, None) for mode in GenerationMode]
        known = known_path_parameters(operation.path, kirana)
        if known:
            seeded = deletes if operation.method.upper() == "DELETE" else runs
            seeded.append((operation, GenerationMode.POSITIVE, known))
    failures = []
    for operation, mode, path_parameters in runs + deletes:
        headers = _auth(operation, kirana, role)
        started = time.monotonic()
        label = f"{operation.label} [{mode}{', seeded' if path_parameters else ''}, {role}]"
        try:
            fuzz_operation(kirana, operation, mode, headers, max_examples, path_parameters)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Unsatisfiable:  # no invalid input exists (e.g. an operation without inputs)
            assert mode == GenerationMode.NEGATIVE, operation.label
        except BaseException as exc:  # every operation's failures, not only the first
            failures.append(f"{label}: {exc}")
        print(f"{time.monotonic() - started:6.2f} s  {label}")
    return failures


def fuzz_operation(
    kirana: RunningKirana,
    operation: APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    max_examples: int,
    path_parameters: dict[str, str] | None = None,
) -> None:
    """Examples are drawn deterministically (``derandomize``) so a failure reproduces; they are
    not shrunk, to keep the run bounded (schemathesis prints the failing case as curl)."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=kirana.url, headers=headers, checks=CHECKS)

    call()


def test_every_route_answers_within_its_schema_as_admin(
    fuzzed: RunningKirana, openapi_document: dict
) -> None:
    failures = fuzz(fuzzed, openapi_document, "admin", max_examples=15)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("role", ["viewer", "none"])
def test_every_route_answers_within_its_schema_without_admin(
    fuzzed: RunningKirana, openapi_document: dict, role: str
) -> None:
    failures = fuzz(fuzzed, openapi_document, role, max_examples=3)
    assert not failures, "\n\n".join(failures)
