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

from fastapi import HTTPException, Request

from kirana.api.routes.tracking import HANDLERS
from kirana.collect.values import explain_undecodable, find_violation, may_break_limits

_COLLECTOR_ENDPOINTS = frozenset(HANDLERS.values())


async def storable_input(request: Request) -> None:
    """Raise 422 naming the first path parameter, query parameter or body value a store
    could not hold; do nothing (and cost a few byte searches) otherwise."""
    if request.scope.get("endpoint") in _COLLECTOR_ENDPOINTS:
        return
    query = request.query_params
    violation = find_violation(dict(request.path_params), root="path") or find_violation(
        {name: query.getlist(name) for name in query}, root="query"
    )
    if violation is None and _is_plain_json(request):
        raw = await request.body()  # cached: the route reads the same bytes
        if may_break_limits(raw):
            violation = explain_undecodable(raw, root="body")
    if violation is not None:
        raise HTTPException(422, detail={"code": violation.code, "message": violation.message})


def _is_plain_json(request: Request) -> bool:
    if request.method not in ("POST", "PUT", "PATCH") or "content-encoding" in request.headers:
        return False
    return "json" in request.headers.get("content-type", "")
