"""Wiring for automation: the feedback consumer (wherever consumers run) and the personalise
service (in the process that serves HTTP).

``attach`` is listed in ``runtime.EXTENSIONS``. The consumer and the API share nothing in
memory: statistics and frequency-cap impressions travel through ``feedback.sqlite``, content
through ``content.sqlite``, recommendation lists through ``serving.sqlite``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from kirana.serving.caches import ContentCache, RecommendationCache, Refresher, StatsCache
from kirana.serving.content_store import ContentStore, content_path
from kirana.serving.decision_log import SCHEMA, DecisionLog, table_writer, unless_suppressed
from kirana.serving.decision_spool import DecisionSpool, spool_dir
from kirana.serving.feedback_consumer import FeedbackConsumer
from kirana.serving.feedback_store import FeedbackStore, feedback_path
from kirana.serving.personalize import PersonalizeService
from kirana.serving.profiles import ProfileReader
from kirana.serving.store import ServingStore, serving_path

if TYPE_CHECKING:
    from kirana.config import Settings
    from kirana.runtime import Platform

SERVICE = "automation.personalize"


def attach(platform: Platform) -> None:
    """Count impressions and clicks from the event log into ranking statistics."""
    settings = platform.settings
    consumer = FeedbackConsumer(
        platform.log,
        FeedbackStore(feedback_path(settings.state_dir)),
        ContentStore(content_path(settings.state_dir)),
        settings.automation.half_life_hours * 3600,
    )
    platform.add_consumer(consumer)


@dataclass
class Personalization:
    """This process's personalise service and what it owns (closed with the platform)."""

    service: PersonalizeService
    decisions: DecisionLog
    refresher: Refresher
    stores: tuple

    def close(self) -> None:
        self.refresher.close()
        self.decisions.close()
        for store in self.stores:
            store.close()


def build(
    settings: Settings,
    profile_store: object,
    suppressed: Callable[[str | None, str | None], bool] | None = None,
    decision_writer: Callable[[pa.Table], object] | None = None,
    collect_decisions: Callable[[], object] | None = None,
) -> Personalization:
    """Open the stores and caches the personalise API reads, and the decision log (which
    skips decisions about people ``suppressed`` says were erased, hands its batches to
    ``decision_writer`` instead of the Delta table when given one, and calls
    ``collect_decisions`` after each flush)."""
    auto = settings.automation
    content = ContentStore(content_path(settings.state_dir))
    feedback = FeedbackStore(feedback_path(settings.state_dir))
    serving = ServingStore(serving_path(settings.state_dir))
    profiles = ProfileReader(profile_store, auto.profile_cache_seconds)  # type: ignore[arg-type]
    content_cache = ContentCache(content)
    stats_cache = StatsCache(feedback, auto.half_life_hours * 3600)
    recs = RecommendationCache(serving)
    decisions = DecisionLog(
        settings.lake_dir,
        flush_seconds=auto.decision_flush_seconds,
        writer=decision_writer,
        collect=collect_decisions,
    )
    log_decision = decisions.append
    if suppressed is not None:
        log_decision = unless_suppressed(decisions.append, suppressed)
    service = PersonalizeService(
        auto, profiles, content_cache, stats_cache, recs, feedback, log_decision
    )
    refresher = Refresher(
        auto.refresh_seconds, content_cache.refresh, stats_cache.refresh, recs.refresh
    )
    return Personalization(service, decisions, refresher, (content, feedback, serving, profiles))


def personalization(platform: Platform) -> Personalization:
    """The process-wide personalise service for ``platform`` (built on first use)."""
    from kirana.runtime import open_profile_store
    from kirana.serving.experiments import PersonalizeExperiments

    def make() -> Personalization:
        spool = DecisionSpool(
            spool_dir(platform.settings.state_dir),
            SCHEMA,
            max_bytes=platform.settings.automation.decision_spool_max_mb * 1024 * 1024,
        )
        made = build(
            platform.settings,
            open_profile_store(platform.settings),
            platform.suppression,
            decision_writer=spool.put,
            collect_decisions=None if platform.role == "replica" else _collector(platform, spool),
        )
        made.service.assigner = PersonalizeExperiments(platform)  # server-side experiments
        return made

    return platform.service(SERVICE, make)


#: spooled bytes appended per flush at most: a backlog (after an outage) is caught up in
#: commits of bounded memory and time, each well inside the worker call's timeout
COLLECT_BYTES = 64 * 1024 * 1024


def _collector(platform: Platform, spool: DecisionSpool) -> Callable[[], int]:
    """The first API process's part of the decision log: have everything spooled appended,
    by the consumer worker where there is one (a lower-priority process: no request waits
    for the append), else here."""
    here = table_writer(platform.settings.lake_dir)

    def collect() -> int:
        paths = spool.pending(max_bytes=COLLECT_BYTES)
        if not paths:
            return 0
        worker = platform.worker
        if worker is not None and not worker.stopped:
            return int(worker.call("decisions", paths, timeout=60))
        return here.append_spooled(paths)  # no worker, or stopped for good: one writer still

    return collect
