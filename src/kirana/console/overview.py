"""The overview's numbers: pipeline status sampled over time, events per minute and lake
freshness from the lake, quarantine counts, destination lag and model job runs.

Consumer lag exists only as a current value, so the console samples it (with the
destinations' lag) at most every few seconds while someone watches the overview and keeps
the last hour in memory: the lag charts start when the API process does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kirana.runtime import Platform

SAMPLE_EVERY_SECONDS = 5.0
KEEP_SAMPLES = 720  # one hour at one sample per 5 s
QUARANTINE_PAGES = 5  # the quarantine store pages from the oldest: at most 5,000 read


@dataclass
class LagHistory:
    """Consumer and destination lag, sampled while the overview is open."""

    samples: deque = field(default_factory=lambda: deque(maxlen=KEEP_SAMPLES))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self, platform: Platform, destinations: list[dict[str, Any]]) -> None:
        now = time.time()
        with self.lock:
            if self.samples and now - self.samples[-1]["at"] < SAMPLE_EVERY_SECONDS:
                return
            consumers = {n: c["lag"] for n, c in platform.consumer_status().items()}
            lags = {d["name"]: d.get("lag_seconds", 0.0) for d in destinations}
            self.samples.append({"at": now, "consumers": consumers, "destinations": lags})

    def series(self, part: str) -> dict[str, tuple[list[str], list[float]]]:
        with self.lock:
            samples = list(self.samples)
        out: dict[str, tuple[list[str], list[float]]] = {}
        for s in samples:
            stamp = datetime.fromtimestamp(s["at"], UTC).isoformat()
            for name, value in s[part].items():
                xs, ys = out.setdefault(name, ([], []))
                xs.append(stamp)
                ys.append(value)
        return out


def history(platform: Platform) -> LagHistory:
    return platform.service("console.lag_history", LagHistory)


def lake_activity(lake_dir: Path, minutes: int = 60) -> dict[str, Any]:
    """Events landed per minute over the last ``minutes``, the newest ``received_at`` and
    the table's row count (the last two from the Delta log alone)."""
    from kirana.console.lake_files import EventFiles

    files = EventFiles.open(lake_dir)
    if files is None:
        return {"minutes": [], "counts": [], "newest": None, "total": 0}
    now = datetime.now(UTC)
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    counts = files.per_minute(since)
    return {
        "minutes": [m.isoformat() for m in counts],
        "counts": list(counts.values()),
        "newest": files.newest_received,
        "total": files.total_rows,
    }


def quarantine_by_hour(platform: Platform) -> dict[str, Any]:
    """Quarantined events per hour and reason code (from the first pages the store gives)."""
    entries = []
    after = -1
    for _ in range(QUARANTINE_PAGES):
        page = platform.store.list_quarantined(after_offset=after, limit=1000)
        entries += page
        if len(page) < 1000:
            break
        after = page[-1].log_offset
    counts: Counter[tuple[str, str]] = Counter()
    for e in entries:
        hour = e.received_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        counts[(e.code, hour.isoformat())] += 1
    return {
        "total": len(entries),
        "capped": len(entries) >= QUARANTINE_PAGES * 1000,
        "by_code": dict(Counter(e.code for e in entries)),
        "series": counts,
    }


def model_runs(platform: Platform, limit: int = 50) -> list[dict[str, Any]]:
    from kirana.models.jobs.registry import RunRegistry, registry_path

    registry = platform.service(
        "console.run_registry", lambda: RunRegistry(registry_path(platform.settings.state_dir))
    )
    return [r.as_dict() for r in registry.runs(limit=limit)]
