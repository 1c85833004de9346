"""Model jobs on a schedule inside ``kirana serve`` (listed in ``runtime.EXTENSIONS``).

Each job with ``models.schedule.<job>`` minutes > 0 becomes a scheduled platform job that
runs it every so many minutes (the first run one period after start). A run that fails is
recorded in the run registry and leaves the previous output in place; the next period
tries again. A run still going when its next period comes is not doubled: the job lock
makes the second attempt fail fast, and the scheduler logs it. Model jobs of one process
run one after another (they would otherwise all start together and compete for memory).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kirana.runtime import Platform

log = logging.getLogger(__name__)


def attach(platform: Platform) -> None:
    """Register one scheduled job per model job with a schedule."""
    schedule = platform.settings.models.schedule
    for name, minutes in schedule.model_dump().items():
        if minutes > 0:
            platform.schedule(f"models.{name}", minutes * 60, _runner(platform, name))


def _runner(platform: Platform, name: str):
    def run() -> None:
        from kirana.models.jobs.locks import JobBusy
        from kirana.models.jobs.runner import JobRunner

        serial = platform.service("models.serial", threading.Lock)
        runner = JobRunner(platform.settings)
        try:
            with serial:
                result = runner.run(name)
        except JobBusy as exc:
            log.info("scheduled %s skipped: %s", name, exc)
            return
        finally:
            runner.close()
        if result.status != "succeeded":
            raise RuntimeError(f"model job {name} run {result.run_id} failed: {result.error}")
        log.info("model job %s run %s succeeded", name, result.run_id)

    return run
