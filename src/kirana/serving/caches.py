"""In-memory views of the stores the personalise API reads on every request.

Content and ranking statistics change seconds apart, requests arrive a millisecond apart, so
the API keeps both in memory and a background thread brings them up to date: content when the
content store's revision moves, statistics by loading only the cells stamped after the last
``rev`` seen. Recommendation lists are too many to hold (one per user), so they are read per
request, except the shared ones (popular, frequently bought together), which are cached until
a model job publishes a new version. Each view is shared with other processes only through
its SQLite file, so consumers and API may run in different processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from kirana.automation.content import Epoch
from kirana.automation.specs import CompiledPlacement
from kirana.automation.stats import Counts, StatsKey, seconds
from kirana.serving.content_store import ContentStore
from kirana.serving.feedback_store import FeedbackStore
from kirana.serving.store import ServingStore

log = logging.getLogger(__name__)


class ContentCache:
    """Every placement, compiled; reloaded whole when the revision changes (it is small)."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self.revision, self.placements = store.snapshot()

    def refresh(self) -> bool:
        if self._store.revision() == self.revision:
            return False
        revision, placements = self._store.snapshot()
        self.placements, self.revision = placements, revision  # one reference swap
        return True

    def get(self, key: str) -> CompiledPlacement | None:
        return self.placements.get(key)


class StatsCache:
    """A long-lived :class:`FeedbackStats`, updated in place with the cells that changed."""

    def __init__(self, store: FeedbackStore, half_life_seconds: float) -> None:
        self._store = store
        self._half_life = half_life_seconds
        self.stats, self.rev = store.load_stats(half_life_seconds)

    def refresh(self) -> bool:
        changed, rev = self._store.load_stats(self._half_life, self.rev)
        if rev == self.rev:
            return False
        self.stats.assign(changed)
        self.rev = rev
        return True


class CountsView:
    """Memoised ``counts`` over a :class:`FeedbackStats`, for one second at a time.

    Ranking reads the same (arm, segment) counts for every request; they are user-independent
    and decay by a relative 1e-6 per second, so they are computed once per second (or per
    statistics refresh) rather than per request. Quacks like the ``FeedbackStats`` reads that
    ``rank_placement`` and ``review`` make.
    """

    def __init__(self, stats: StatsCache) -> None:
        self._stats = stats
        self._memo: dict[tuple, Counts] = {}
        self._stamp: tuple[int, int] = (-1, -1)

    def counts(
        self, key: StatsKey, now: float | datetime | None = None, *, epoch: Epoch | None = None
    ) -> Counts:
        t = seconds(now) if now is not None else 0.0
        stamp = (self._stats.rev, int(t))
        if stamp != self._stamp:
            self._memo, self._stamp = {}, stamp
        memo_key = (key, epoch)
        hit = self._memo.get(memo_key)
        if hit is None:
            hit = self._memo[memo_key] = self._stats.stats.counts(key, now, epoch=epoch)
        return hit

    def epoch(self, key: StatsKey) -> Epoch | None:
        return self._stats.stats.epoch(key)


class RecommendationCache:
    """Per-request reads of per-user lists; shared lists cached until a new version."""

    def __init__(self, store: ServingStore, max_shared: int = 50_000) -> None:
        self._store = store
        self._max_shared = max_shared
        self._shared: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self.versions = store.versions()

    def per_user(self, widget: str, key: str) -> list[tuple[str, float]]:
        return self._store.recommendations(widget, key)

    def shared(self, widget: str, key: str) -> list[tuple[str, float]]:
        hit = self._shared.get((widget, key))
        if hit is None:
            hit = self._store.recommendations(widget, key)
            if len(self._shared) >= self._max_shared:
                self._shared.clear()
            self._shared[(widget, key)] = hit
        return hit

    def refresh(self) -> bool:
        versions = self._store.versions()
        if versions == self.versions:
            return False
        self.versions = versions
        self._shared = {}
        return True


class Refresher:
    """Calls each ``refresh`` every ``every`` seconds on a daemon thread until closed."""

    def __init__(self, every: float, *refreshers: Callable[[], bool]) -> None:
        self._every = every
        self._refreshers = refreshers
        self._stop = threading.Event()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="personalize-refresh", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.run_once()

    def run_once(self) -> None:
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception:  # keep serving what we have; the next turn retries
                self.errors += 1
                log.exception("personalize: refresh failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
