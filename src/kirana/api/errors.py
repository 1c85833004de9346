"""Every error the API answers is ``{code, message}`` (plus optional fields).

Routes raise ``HTTPException`` with a dict detail; the handlers here give the same shape to
what FastAPI and Starlette produce themselves (unknown paths, wrong methods, request
validation) and to exceptions nobody expected, so a client parses one body for every error.
A validation message names the field as ``query.limit`` / ``body.name`` and the rule, and
nothing in an answer carries an exception object: pydantic's ``ctx`` may hold one (a
``ValueError`` raised by a validator), which is not JSON and would itself turn into a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

#: ``code`` for an ``HTTPException`` raised with a plain string detail, by status
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "overloaded",
}

#: pydantic error types whose rule reads better in words; the rest keep pydantic's text
_RULES = {
    "missing": lambda ctx: "is required",
    "less_than_equal": lambda ctx: f"must be <= {ctx.get('le')}",
    "less_than": lambda ctx: f"must be < {ctx.get('lt')}",
    "greater_than_equal": lambda ctx: f"must be >= {ctx.get('ge')}",
    "greater_than": lambda ctx: f"must be > {ctx.get('gt')}",
    "int_parsing": lambda ctx: "must be an integer",
    "int_type": lambda ctx: "must be an integer",
    "float_parsing": lambda ctx: "must be a number",
    "bool_parsing": lambda ctx: "must be true or false",
    "string_pattern_mismatch": lambda ctx: f"must match {ctx.get('pattern')}",
    "string_too_long": lambda ctx: f"must be at most {ctx.get('max_length')} characters",
    "string_too_short": lambda ctx: f"must be at least {ctx.get('min_length')} characters",
    "json_invalid": lambda ctx: "is not valid JSON",
    "model_attributes_type": lambda ctx: "must be a JSON object",
    "dict_type": lambda ctx: "must be a JSON object",
}


#: FastAPI's own 400 for a body it cannot decode (not UTF-8, or nested past Python's
#: recursion limit)
_UNPARSABLE_BODY = "There was an error parsing the body"


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    """An ``HTTPException`` as ``{code, message}`` (a route may raise one with a dict detail)."""
    detail = exc.detail
    if exc.status_code == 400 and detail == _UNPARSABLE_BODY:  # a 422, as a JSON syntax error
        message = "body: must be JSON in UTF-8, nested at most a few hundred levels"
        return JSONResponse(
            {"code": "invalid_field", "message": message, "field": "body"}, status_code=422
        )
    if not isinstance(detail, dict):
        code = STATUS_CODES.get(exc.status_code, "error")
        detail = {"code": code, "message": str(detail)}
    return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)  # an exception object, a Decimal, a pattern…


def describe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as ``{field, rule, message}``, with JSON values only."""
    loc = tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    words = _RULES.get(error.get("type", ""))
    rule = words(ctx) if words else str(error.get("msg", "is invalid"))
    if error.get("type") == "json_invalid" and len(loc) == 2:  # ("body", character offset)
        rule = f"is not valid JSON (character {loc[1]}: {ctx.get('error', 'syntax error')})"
        loc = loc[:1]
    field = ".".join(str(part) for part in loc) or "request"
    return {
        "field": field,
        "type": str(error.get("type", "")),
        "message": f"{field}: {rule}",
        "ctx": _json_safe(ctx),
    }


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """422 naming the first field and rule in ``message``; every problem in ``errors``."""
    errors = [describe_error(e) for e in exc.errors()]
    message = errors[0]["message"] if errors else "the request is invalid"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more in `errors`)"
    body = {
        "code": "invalid_field",
        "message": message,
        "field": errors[0]["field"] if errors else None,
        "errors": errors,
    }
    return JSONResponse(body, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as ``{code, message}``, including the ones FastAPI makes itself."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404 and exc.detail == "Not Found":  # the router's, not a route's
            exc = StarletteHTTPException(404, f"no such path: {where} (see /docs)")
        elif exc.status_code == 405 and exc.detail == "Method Not Allowed":
            exc = StarletteHTTPException(405, f"{where}: method not allowed", exc.headers)
        return http_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    app.add_exception_handler(Exception, internal_error)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """500 ``internal_error``: the exception's text goes to the log only (it can hold paths,
    SQL or values). Starlette re-raises after this answer, so the server logs the traceback."""
    log.error("500 answering %s %r: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        {
            "code": "internal_error",
            "message": "the server failed to answer this request; the error is in its log",
        },
        status_code=500,
    )
