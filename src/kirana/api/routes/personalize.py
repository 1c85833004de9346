"""``GET /v1/personalize``: the ranked, tracked feed for one user at one placement.

Apps call it, so it takes what apps hold: a source's write key (basic-auth user name or
``X-Write-Key``, as the tracking API) or, for servers, a Bearer access token. Thin: the work
is in :mod:`kirana.serving.personalize`. Async and inline on the event loop: the service does
only in-memory work and point reads, so a thread hop would cost more than it saves.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from kirana.collect.service import CollectError, Credentials
from kirana.runtime import Platform, SourceCache
from kirana.serving.extension import personalization
from kirana.serving.personalize import PersonalizeRequest, PlacementNotFound
from kirana.serving.responses import ErrorBody, PersonalizeResponse

router = APIRouter(prefix="/v1", tags=["personalize"])

MAX_LIMIT = 50
MAX_ITEM_IDS = 20

_RESPONSES = {
    200: {
        "description": "Ordered widgets with items and tracking ids",
        "content": {"application/json": {"schema": msgspec.json.schema(PersonalizeResponse)}},
    },
    400: {
        "description": "A bad query: `{code, message}` names the parameter and the rule",
        "content": {"application/json": {"schema": msgspec.json.schema(ErrorBody)}},
    },
    401: {"description": "Missing or unknown write key / token"},
    404: {"description": "No such placement"},
}
_encode = msgspec.json.Encoder().encode


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _unauthorized(platform: Platform, request: Request) -> Response | None:
    headers = request.headers
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        # read on every request (~10 us), never cached: a revoked token fails at once
        if platform.store.token_by_secret(auth[7:].strip()) is not None:
            return None
        return _error(
            401,
            "unknown_token",
            "unknown access token; create one with `kirana tokens create NAME --role viewer`",
        )
    try:
        key = Credentials(auth or None, headers.get("x-write-key")).header_key()
    except CollectError as exc:
        return _error(exc.status, exc.code, exc.message)
    if not key:
        return _error(
            401,
            "missing_credentials",
            "send a source's write key (basic-auth user name or X-Write-Key) "
            "or `Authorization: Bearer <token>`",
        )
    sources = platform.service("personalize.sources", lambda: SourceCache(platform.store))
    source = sources(key)
    if source is None:
        return _error(
            401,
            "unknown_write_key",
            "unknown write key; create a source with `kirana sources create NAME`",
        )
    if not source.enabled:
        return _error(403, "source_disabled", f"source {source.name!r} is disabled")
    return None


def parse_query(
    placement: str | None,
    user_id: str | None,
    anonymous_id: str | None,
    limit: str | None,
    item_ids: list[str],
) -> PersonalizeRequest | Response:
    """The request, or a 400 naming the parameter and the rule."""
    if not placement:
        return _error(
            400, "missing_field", "`placement` is required, e.g. ?placement=home_feed&userId=u1"
        )
    texts = [("placement", placement), ("userId", user_id), ("anonymousId", anonymous_id)]
    for name, text in texts + [("itemId", item) for item in item_ids]:
        if text and "\x00" in text:  # PostgreSQL profile stores refuse NUL in text
            return _error(400, "invalid_text", f"`{name}` contains a NUL character (U+0000)")
    user_id, anonymous_id = user_id or None, anonymous_id or None
    if (user_id is None) == (anonymous_id is None):
        return _error(
            400,
            "invalid_identity",
            "send exactly one of `userId` (signed-in) or `anonymousId` (visitor)",
        )
    parsed_limit = None
    if limit is not None:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            return _error(
                400, "invalid_field", f"`limit` must be a whole number from 1 to {MAX_LIMIT}"
            )
        parsed_limit = int(limit)
    if len(item_ids) > MAX_ITEM_IDS:
        return _error(400, "invalid_field", f"at most {MAX_ITEM_IDS} `itemId` values")
    return PersonalizeRequest(placement, user_id, anonymous_id, parsed_limit, tuple(item_ids))


@router.get(
    "/personalize",
    responses=_RESPONSES,
    response_class=Response,
    openapi_extra={"security": [{"writeKeyBasic": []}, {"writeKeyHeader": []}, {"HTTPBearer": []}]},
)
async def personalize(
    request: Request,
    placement: str | None = Query(None, description="Placement key, e.g. `home_feed`"),
    user_id: str | None = Query(None, alias="userId", description="Signed-in user's id"),
    anonymous_id: str | None = Query(None, alias="anonymousId", description="Visitor's id"),
    limit: str | None = Query(None, description=f"At most this many widgets (1-{MAX_LIMIT})"),
    item_id: list[str] = Query(
        [], alias="itemId", description="Products in view (product page, cart): repeatable"
    ),
) -> Response:
    """Ordered widgets and items for one user, each item with the `tracking_id` to send back
    in `properties.tracking_id` of `Promotion Viewed`, `Promotion Clicked`, `Product Clicked`
    and `Product Added`. Authenticate with a write key (as the tracking API) or a Bearer token.
    """
    return serve(request, placement, user_id, anonymous_id, limit, item_id)


async def personalize_raw(request: Request) -> Response:
    """The same endpoint for :class:`kirana.api.hot_paths.HotPaths`: parameters read straight
    from the query string instead of through FastAPI's parameter solving."""
    query = request.query_params
    return serve(
        request,
        query.get("placement"),
        query.get("userId"),
        query.get("anonymousId"),
        query.get("limit"),
        query.getlist("itemId"),
    )


def serve(
    request: Request,
    placement: str | None,
    user_id: str | None,
    anonymous_id: str | None,
    limit: str | None,
    item_ids: list[str],
) -> Response:
    platform: Platform = request.app.state.platform
    denied = _unauthorized(platform, request)
    if denied is not None:
        return denied
    parsed = parse_query(placement, user_id, anonymous_id, limit, item_ids)
    if isinstance(parsed, Response):
        return parsed
    try:
        result = personalization(platform).service.personalize(parsed)
    except PlacementNotFound as exc:
        return _error(404, "unknown_placement", str(exc))
    return Response(_encode(result), media_type="application/json")
