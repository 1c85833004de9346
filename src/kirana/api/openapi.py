"""The OpenAPI document, completed: every status a route answers, every ``$ref`` resolvable.

FastAPI describes what it can see in a route's signature: its success response and a 422
for parameters. The rest is the same for whole classes of routes, so it is added here
rather than repeated on every route: a route behind an access token answers 401 (and 403
when it needs an admin token), one with a path parameter answers 404 when the thing named
does not exist, and any route may answer 500 (:func:`kirana.api.errors.install_error_handlers`).
Every error response is described by the one ``Error`` schema (``{code, message}``).
Statuses particular to a route (409, 502, …) stay declared on the route (``responses=``).

Schemas made by msgspec (the tracking and personalise wire types) keep their definitions
under a local ``$defs`` with ``#/$defs/…`` references, which do not resolve inside an
OpenAPI document; they are moved into ``components/schemas``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from kirana.api.deps import AdminDep, ViewerDep

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "Every error answer: a stable `code` and a `message` for people that names "
    "the field and the rule; some errors add fields (`field`, `rule`, `errors`).",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Stable, machine-readable"},
        "message": {"type": "string"},
    },
    "additionalProperties": True,
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_BEARER_TOKEN = ViewerDep.__metadata__[0].dependency  # what every viewer route depends on
_ADMIN_TOKEN = AdminDep.__metadata__[0].dependency

#: descriptions of the statuses added by class of route
_CLASS_STATUSES = {
    "401": "Missing or unknown access token (`Authorization: Bearer <token>`)",
    "403": "Not allowed: the route needs an admin token, or the write key's source is disabled",
    "404": "Nothing of that name: `{code, message}` says what is missing",
    "422": "Invalid parameter or body: `message` names the field and the rule",
    "500": "Unexpected server error (`internal_error`); the detail is in the server's log",
    "503": "Unavailable, nothing applied: retry after `Retry-After` (an extra API process "
    "could not reach the first, or the event log cannot write)",
}

#: where the fields of a free-form answer (a JSON object typed only as "an object") are
#: documented, by the operation's first tag
_FIELDS_DOCUMENTED_IN = {
    "experiments": "docs/experiments.md",
    "content": "docs/automation.md",
    "segments": "docs/segments.md",
    "replication": "docs/replication.md",
    "warehouse": "docs/replication.md",
    "destinations": "docs/destinations.md",
    "syncs": "docs/destinations.md",
}

WRITE_KEY_SCHEMES = {
    "writeKeyBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "Write key as the user name",
    },
    "writeKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Write-Key"},
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) the completed document."""
    base = app.openapi  # FastAPI's: cached until routes are added
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = base()
        if completed != [id(schema)]:
            completed[:] = [id(complete(schema, app.routes))]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """``schema`` with ``$defs`` hoisted, the class-wide statuses declared, errors described."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    hoisted: dict[str, Any] = {}
    _hoist_defs(schema, hoisted)
    for name, definition in hoisted.items():
        if name in schemas and schemas[name] != definition:
            raise ValueError(f"two different schemas are named {name!r}")
        schemas[name] = definition
    schemas["Error"] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {}).update(WRITE_KEY_SCHEMES)
    for route in iter_route_contexts(routes):  # FastAPI 0.165 nests included routers
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _declare(operation, _class_statuses(route, operation))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)  # FastAPI's 422 body; ours is `Error`
    return schema


def _class_statuses(route: Any, operation: dict[str, Any]) -> list[str]:
    calls = set(_calls(route.dependant))
    statuses = ["500", "503"]
    if _BEARER_TOKEN in calls or operation.get("security"):  # a token or a write key
        statuses.append("401")
    if _ADMIN_TOKEN in calls or operation.get("security", [{}])[0].keys() & WRITE_KEY_SCHEMES:
        statuses.append("403")  # a viewer token, or the write key of a disabled source
    if route.dependant.path_params:
        statuses.append("404")
    if _has_inputs(route.dependant):
        statuses.append("422")
    return statuses


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _has_inputs(dependant: Dependant) -> bool:
    if dependant.query_params or dependant.path_params or dependant.body_params:
        return True
    return any(_has_inputs(sub) for sub in dependant.dependencies)


def _declare(operation: dict[str, Any], statuses: list[str]) -> None:
    responses = operation.setdefault("responses", {})
    _point_free_form_answers_at_their_docs(operation)
    for status in statuses:
        responses.setdefault(status, {"description": _CLASS_STATUSES[status]})
    for status, response in responses.items():
        if not status.isdigit() or int(status) < 400:
            continue
        content = response.get("content", {}).get("application/json", {})
        schema = content.get("schema", {})
        if not schema or schema.get("$ref") == "#/components/schemas/HTTPValidationError":
            response["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
        if status == "422" and response.get("description") == "Validation Error":
            response["description"] = _CLASS_STATUSES["422"]


def _point_free_form_answers_at_their_docs(operation: dict[str, Any]) -> None:
    doc = _FIELDS_DOCUMENTED_IN.get((operation.get("tags") or [""])[0])
    for status, response in operation.get("responses", {}).items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        items = schema.get("items", {}) if schema.get("type") == "array" else schema
        free_form = schema and "$ref" not in items and not items.get("properties")
        default = response.get("description") == "Successful Response"  # FastAPI's
        if doc and status.startswith("2") and free_form and default:
            what = "A list of JSON objects" if items is not schema else "A JSON object"
            response["description"] = f"{what}; the fields are described in {doc}"


def _hoist_defs(node: Any, hoisted: dict[str, Any]) -> None:
    """Move every ``$defs`` into ``hoisted`` and point ``#/$defs/X`` at the component."""
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            if name in hoisted and hoisted[name] != definition:
                raise ValueError(f"two different schemas are named {name!r}")
            hoisted[name] = definition
            _hoist_defs(definition, hoisted)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _hoist_defs(value, hoisted)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, hoisted)
