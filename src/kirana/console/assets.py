"""Everything the browser loads, served from the installed packages: the console's CSS and
JavaScript, Plotly's bundle (shipped in the ``plotly`` wheel) and Swagger UI / ReDoc
(shipped in ``fastapi-offline``) for ``/docs`` and ``/redoc``. No CDN: Kirana often runs
on machines without internet access."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response

STATIC = Path(__file__).parent / "static"
#: Vendored bundles that would fetch something from the internet, patched as they are
#: served: ReDoc's sidebar shows a logo from cdn.redoc.ly (no option turns it off).
_LOCAL_INSTEAD = {
    "redoc.standalone.js": (
        b"https://cdn.redoc.ly/redoc/logo-mini.svg",
        b"/console/static/favicon.png",
    ),
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {name!r} package is not installed")
    return Path(spec.origin).parent


@cache
def _files() -> dict[str, Path]:
    """URL name -> file: our own static files and the vendored bundles of two packages."""
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}
    files["plotly.min.js"] = _package_dir("plotly") / "package_data" / "plotly.min.js"
    offline = _package_dir("fastapi_offline") / "static"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        files[name] = offline / name
    return files


router = APIRouter(include_in_schema=False)


@cache
def _patched(name: str) -> bytes:
    remote, local = _LOCAL_INSTEAD[name]
    return _files()[name].read_bytes().replace(remote, local)


@router.get("/console/static/{name}")
def static_file(name: str) -> Response:
    path = _files().get(name)
    if path is None:
        raise HTTPException(
            404, detail={"code": "not_found", "message": f"no console asset named {name!r}"}
        )
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if name in _LOCAL_INSTEAD:
        return Response(_patched(name), media_type=_TYPES[path.suffix], headers=headers)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=headers)


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from local files; create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN-backed pages are not registered."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    static = "/console/static"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )
