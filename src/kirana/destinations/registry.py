"""The one place that turns a destination's kind into its backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kirana.destinations.config import DestinationConfig
from kirana.destinations.protocol import Destination

Emit = Callable[[list[dict[str, Any]]], None]


def build(config: DestinationConfig, emit: Emit | None = None) -> Destination:
    """A ready-to-use backend for ``config`` (imports only the backend it needs)."""
    settings = config.typed_settings()
    if config.kind == "webhook":
        from kirana.destinations.webhook import WebhookDestination

        return WebhookDestination(settings)
    if config.kind == "segment":
        from kirana.destinations.segment_forward import SegmentForwardDestination

        return SegmentForwardDestination(settings)
    if config.kind == "postgres":
        from kirana.destinations.postgres_table import PostgresTableDestination

        return PostgresTableDestination(settings)
    if config.kind == "redis":
        from kirana.destinations.redis_store import RedisDestination

        return RedisDestination(settings)
    if config.kind == "file":
        from kirana.destinations.file_drop import FileDropDestination

        return FileDropDestination(settings)
    if config.kind == "email":
        from kirana.destinations.email_smtp import EmailDestination

        return EmailDestination(settings)
    if config.kind == "profiles":
        from kirana.destinations.profiles_writeback import ProfilesDestination

        if emit is None:
            raise ValueError("the profiles destination needs the platform's event log")
        return ProfilesDestination(settings, emit)
    raise ValueError(f"unknown destination kind {config.kind!r}")
