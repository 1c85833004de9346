"""Inside ``kirana serve``: re-analyse experiments every ``experiments.report_every_minutes``.

Reports of large experiments take minutes (docs/benchmarks.md), too long for an HTTP request,
so a scheduled job computes them and stores each in ``experiments.sqlite``; the API serves
the stored report (``?refresh=true`` recomputes on demand). The job may run in another
process than the API: they share only that file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kirana.runtime import Platform

log = logging.getLogger(__name__)


def attach(platform: Platform) -> None:
    """Register the report job (unless the period is 0)."""
    settings = platform.settings

    def run() -> None:
        from kirana.experiments.analyse import refresh_reports
        from kirana.experiments.platform import experiments

        results = refresh_reports(settings, experiments(platform).service)
        failed = {k: v for k, v in results.items() if v != "ok"}
        if failed:
            log.warning("experiment reports failed: %s", failed)
        log.info("experiment reports refreshed: %d", len(results))

    platform.schedule("experiment-reports", settings.experiments.report_every_minutes * 60, run)
