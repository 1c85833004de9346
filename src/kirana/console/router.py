"""The console's routes, assembled: ``app.include_router(console_router)``."""

from __future__ import annotations

from fastapi import APIRouter

from kirana.console import assets
from kirana.console.pages import (
    audiences,
    content,
    destinations,
    experiments,
    models,
    overview,
    profiles,
    session,
    sources,
    syncs,
)

PARTS = (
    assets,
    session,
    overview,
    profiles,
    sources,
    audiences,
    destinations,
    syncs,
    experiments,
    models,
    content,
)

router = APIRouter(include_in_schema=False)
for part in PARTS:
    router.include_router(part.router)
