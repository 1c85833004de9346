"""A personalise service over real stores in a temporary folder, without HTTP."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kirana.automation.stats import StatsKey
from kirana.config import AutomationSettings
from kirana.identity.sqlite_store import SQLiteProfileStore
from kirana.serving.caches import ContentCache, RecommendationCache, StatsCache
from kirana.serving.content_store import ContentStore
from kirana.serving.decision_log import LoggedRow
from kirana.serving.feedback_store import FeedbackStore
from kirana.serving.personalize import PersonalizeService
from kirana.serving.profiles import ProfileReader
from kirana.serving.store import ServingStore


def item(key: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "title": key.title(), "template": "card", **extra}


@dataclass
class Env:
    service: PersonalizeService
    content: ContentStore
    feedback: FeedbackStore
    serving: ServingStore
    profiles: SQLiteProfileStore
    logged: list[LoggedRow] = field(default_factory=list)

    def refresh(self) -> None:
        self.service.content.refresh()
        self.service.stats.refresh()
        self.service.recommendations.refresh()

    def person(
        self,
        user_id: str,
        *,
        audiences: tuple[str, ...] = (),
        computed: dict[str, Any] | None = None,
    ) -> str:
        profile_id = f"p-{user_id}"
        with self.profiles.transaction():
            self.profiles.assign({("user_id", user_id): profile_id})
            for audience in audiences:
                self.profiles.apply_membership(audience, [profile_id], [], "test")
            for name, value in (computed or {}).items():
                self.profiles.replace_computed_values(
                    name, [(profile_id, json.dumps(value))], [profile_id]
                )
        return profile_id

    def seed(
        self,
        arm: str,
        impressions: int,
        clicks: int,
        *,
        segment: str | None = None,
        epoch: tuple[int, float] = (1, 0.0),
        t: float | None = None,
        placement: str = "home_feed",
    ) -> None:
        """Add counts to the feedback store as the consumer would."""
        stats, _ = self.feedback.load_stats(self.service.settings.half_life_hours * 3600)
        t = time.time() if t is None else t
        for i in range(impressions):
            stats.observe(placement, arm, segment, t, clicked=i < clicks, epoch=epoch)
        keys = [StatsKey(placement, arm, segment or "all"), StatsKey(placement, arm)]
        with self.feedback.transaction() as rev:
            self.feedback.save_cells(stats, keys, rev)
        self.refresh()


def make_env(tmp_path: Path, seed: int = 0, **overrides: Any) -> Env:
    settings = AutomationSettings(**{"profile_cache_seconds": 0, **overrides})
    content = ContentStore(tmp_path / "content.sqlite")
    feedback = FeedbackStore(tmp_path / "feedback.sqlite")
    serving = ServingStore(tmp_path / "serving.sqlite")
    profiles = SQLiteProfileStore(tmp_path / "profiles.sqlite")
    logged: list[LoggedRow] = []
    service = PersonalizeService(
        settings,
        ProfileReader(SQLiteProfileStore(tmp_path / "profiles.sqlite"), 0),
        ContentCache(content),
        StatsCache(feedback, settings.half_life_hours * 3600),
        RecommendationCache(serving),
        feedback,
        logged.append,
        rng=np.random.default_rng(seed),
    )
    return Env(service, content, feedback, serving, profiles, logged)
