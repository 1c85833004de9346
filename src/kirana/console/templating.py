"""Rendering pages: the Jinja2 environment, the headers every page gets, and the helpers
templates share (links to profiles, numbers, times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from kirana import __version__
from kirana.console.auth import User

TEMPLATES = Path(__file__).parent / "templates"

#: Only Kirana's own scripts run; Plotly sets inline styles on the charts it draws.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def profile_url(value: str, id_type: str = "user_id") -> str:
    """The console page of the profile holding this identifier."""
    return "/console/profiles/view?" + urlencode({"id": value, "type": id_type})


def profile_link(value: Any, id_type: str = "user_id") -> Markup:
    """A user id (or another identifier) as a link to its profile."""
    if value is None or value == "":
        return Markup("")
    text = str(value)
    return Markup('<a href="{}">{}</a>').format(profile_url(text, id_type), text)


def number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def percent(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:+.2f}%"


def when(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC (ISO strings, datetimes, epoch seconds)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def to_json(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">`` (no ``</`` can end the tag)."""
    text = json.dumps(value, default=str, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, sort_keys=True)


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
_env.filters.update(
    profile_link=profile_link,
    number=number,
    percent=percent,
    when=when,
    to_json=to_json,
    pretty=pretty,
)
_env.globals.update(profile_url=profile_url, version=__version__)


def render(
    request: Request,
    template: str,
    user: User | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page: ``template`` with the user, the current path and ``context``."""
    html = _env.get_template(template).render(
        request=request, user=user, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
