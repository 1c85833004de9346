"""Content: placements and their widgets, and per arm the decayed impressions, clicks,
CTR and eviction verdict (the API's own route functions: one implementation)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kirana.api.deps import PlatformDep
from kirana.api.routes import content as content_routes
from kirana.console import charts
from kirana.console.auth import UserDep
from kirana.console.templating import render

router = APIRouter()


@router.get("/console/content", response_class=HTMLResponse)
async def content_page(request: Request, platform: PlatformDep, user: UserDep) -> HTMLResponse:
    placements = content_routes.list_placements(platform, user.token)
    widgets = content_routes.list_widgets(platform, user.token)
    stats, figures = {}, {}
    for placement in placements:
        key = placement["key"]
        try:
            rows = await run_in_threadpool(
                content_routes.placement_stats, key, platform, user.token
            )
        except HTTPException:
            rows = []
        stats[key] = rows
        if rows:
            figures[key] = charts.bars(
                f"{key}: CTR per widget (decayed counts)",
                [f"{r['arm']} · {r['segment']}" for r in rows],
                [r["ctr"] * 100 for r in rows],
                "CTR (%)",
            )
    return render(
        request,
        "content.html",
        user,
        title="Content",
        charts=bool(figures),
        placements=placements,
        widgets=widgets,
        stats=stats,
        figures=figures,
    )
