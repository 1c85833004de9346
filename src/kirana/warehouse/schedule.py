"""Inside ``kirana serve``: export the configured tables every ``warehouse.every_minutes``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kirana.runtime import Platform

log = logging.getLogger(__name__)


def attach(platform: Platform) -> None:
    """Register the export job when a warehouse DSN and a period are configured."""
    settings = platform.settings
    warehouse = settings.warehouse
    if not warehouse.dsn or warehouse.every_minutes <= 0:
        return

    def export() -> None:
        from kirana.lake.catalog import lake_tables
        from kirana.warehouse.export import export_tables

        tables = warehouse.tables or list(lake_tables(settings.lake_dir))
        reports = export_tables(
            settings.lake_dir, warehouse.dsn, warehouse.schema_name, tables, keys=warehouse.keys
        )
        log.info("warehouse export: %s", reports)

    platform.schedule("warehouse-export", warehouse.every_minutes * 60, export)
