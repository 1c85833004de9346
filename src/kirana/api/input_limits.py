"""The management API refuses, naming the field, values that a store behind it cannot hold.

The collector already holds events to these limits (:mod:`kirana.collect.values`): NUL
(U+0000) in text, text that is not Unicode, integers beyond 64 bits, nesting deeper than
64 levels. The other routes hand path parameters, query parameters and JSON bodies to
stores as well (a profile lookup, an erasure, a definition), and PostgreSQL refuses NUL in
``text`` with an error that became a 500. One app-wide dependency applies the same limits
to every route's inputs, so a route added later is covered without knowing about it.

The tracking routes are left to the collector, which judges each event on its own (one
hostile event in a batch is that event's rejection, not the request's). Their hot paths and
``GET /v1/personalize`` never reach FastAPI's dependencies; personalise checks its own
query (:func:`kirana.api.routes.personalize.parse_query`).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant

from kirana.api.routes.tracking import HANDLERS
from kirana.collect.values import explain_undecodable, find_violation, may_break_limits

_COLLECTOR_ENDPOINTS = frozenset(HANDLERS.values())
_declared: dict[int, tuple[frozenset[str], bool]] = {}  # id(route) -> (query names, has body)


async def storable_input(request: Request) -> None:
    """Raise 422 naming the first path parameter, query parameter or body value a store
    could not hold; do nothing (and cost a few byte searches) otherwise."""
    if request.scope.get("endpoint") in _COLLECTOR_ENDPOINTS:
        return
    query_names, has_body = _inputs_of(request.scope.get("route"))
    query = request.query_params  # only what the route reads: the rest goes nowhere
    violation = find_violation(dict(request.path_params), root="path") or find_violation(
        {name: query.getlist(name) for name in query if name in query_names}, root="query"
    )
    if violation is None and has_body and _is_plain_json(request):
        raw = await request.body()  # cached: the route reads the same bytes
        if may_break_limits(raw):
            violation = explain_undecodable(raw, root="body")
    if violation is not None:
        raise HTTPException(422, detail={"code": violation.code, "message": violation.message})


def _inputs_of(route: object) -> tuple[frozenset[str], bool]:
    """The query parameters ``route`` reads (its dependencies' too) and whether it reads a
    body: a value the route never reads is never stored, and a 422 for it would be a status
    the route does not declare."""
    inputs = _declared.get(id(route))
    if inputs is None:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return frozenset(), False
        everything = list(_walk(dependant))
        names = frozenset(p.alias for d in everything for p in d.query_params)
        inputs = _declared[id(route)] = (names, any(d.body_params for d in everything))
    return inputs


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _is_plain_json(request: Request) -> bool:
    if request.method not in ("POST", "PUT", "PATCH") or "content-encoding" in request.headers:
        return False
    return "json" in request.headers.get("content-type", "")
