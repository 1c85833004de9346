"""Per-arm feedback statistics with exponential time decay.

An *arm* is anything the ranking chooses between (a widget in a placement, an item in a
widget). For each ``(placement, arm, segment)`` we keep decayed impressions and clicks: every
observation is worth ``2 ** (-age / half_life)``, so a creative that stopped working last month
stops being carried by last month's clicks, and an arm that has not been shown for a while
regains uncertainty (and so exploration) as its counts shrink. ``segment`` is an audience name
or ``"all"``: feedback is recorded under the user's audience *and* under ``"all"``, so CTR is
learnt per audience while the pooled figure serves users without one and seeds new audiences.

Counts are kept decayed to the time ``t`` of their latest observation, which makes updates
incremental and order-independent: an older event arriving late is added with its weight at
``t``. Merging two partial stats (two consumers, two days) gives the same result as observing
everything in one. Each cell also carries the content :data:`~kirana.automation.content.Epoch`
it describes; an observation for a newer epoch (an edited or re-scheduled item) restarts the
cell, and late observations for an older epoch are dropped.

Persistence is someone else's job: :meth:`FeedbackStats.to_dict` / ``from_dict`` give plain
data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from kirana.automation.content import POOLED_SEGMENT, Epoch

DEFAULT_HALF_LIFE = timedelta(days=7)
NO_EPOCH: Epoch = (0, 0.0)
FORMAT = 1


class StatsKey(NamedTuple):
    placement: str
    arm: str
    segment: str = POOLED_SEGMENT


def item_arm(widget: str, item: str) -> str:
    """The arm key of an item inside a widget (keys cannot contain ``/``)."""
    return f"{widget}/{item}"


class Counts(NamedTuple):
    """Decayed ``impressions`` and ``clicks``; ``shown`` is the undecayed impression count."""

    impressions: float = 0.0
    clicks: float = 0.0
    shown: float = 0.0
    epoch: Epoch = NO_EPOCH

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions > 0 else 0.0


@dataclass
class _Cell:
    impressions: float
    clicks: float
    shown: float
    t: float
    epoch: Epoch


def seconds(t: float | datetime) -> float:
    """POSIX seconds from a datetime (which must carry a zone) or a number."""
    if type(t) is float:
        return t
    if isinstance(t, datetime):
        if t.utcoffset() is None:
            raise ValueError("timestamps must include a UTC offset")
        return t.timestamp()
    return float(t)


class FeedbackStats:
    """Decayed impression and click counts per ``(placement, arm, segment)``."""

    def __init__(self, half_life: float | timedelta = DEFAULT_HALF_LIFE) -> None:
        h = half_life.total_seconds() if isinstance(half_life, timedelta) else float(half_life)
        if not h > 0:
            raise ValueError(f"half_life must be positive (got {h})")
        self.half_life_seconds = h
        self._cells: dict[StatsKey, _Cell] = {}

    def decay(self, age: float) -> float:
        """Weight of an observation ``age`` seconds old (1 at age 0, 1/2 at one half-life)."""
        return 1.0 if math.isinf(self.half_life_seconds) else 2.0 ** (-age / self.half_life_seconds)

    def _add(
        self, key: StatsKey, t: float, impressions: float, clicks: float, epoch: Epoch
    ) -> bool:
        epoch = (int(epoch[0]), float(epoch[1]))
        cell = self._cells.get(key)
        if cell is None or epoch > cell.epoch:
            cell = self._cells[key] = _Cell(0.0, 0.0, 0.0, t, epoch)
        elif epoch < cell.epoch:
            return False  # feedback about content that has since been edited or re-run
        if t >= cell.t:
            f = self.decay(t - cell.t)
            cell.impressions = cell.impressions * f + impressions
            cell.clicks = cell.clicks * f + clicks
            cell.t = t
        else:
            f = self.decay(cell.t - t)
            cell.impressions += impressions * f
            cell.clicks += clicks * f
        cell.shown += impressions
        return True

    def observe_impression(
        self, key: StatsKey, t: float | datetime, *, epoch: Epoch = NO_EPOCH, weight: float = 1.0
    ) -> bool:
        """Count an impression of ``key`` at ``t``; False when dropped as stale."""
        return self._add(StatsKey(*key), seconds(t), weight, 0.0, epoch)

    def observe_click(
        self, key: StatsKey, t: float | datetime, *, epoch: Epoch = NO_EPOCH, weight: float = 1.0
    ) -> bool:
        """Count a click (or add-to-cart) on ``key`` at ``t``; False when dropped as stale."""
        return self._add(StatsKey(*key), seconds(t), 0.0, weight, epoch)

    def observe(
        self,
        placement: str,
        arm: str,
        segment: str | None,
        t: float | datetime,
        *,
        clicked: bool = False,
        impression: bool = True,
        epoch: Epoch = NO_EPOCH,
    ) -> None:
        """Record one outcome under the user's segment and under the pooled ``"all"``."""
        segments = {segment or POOLED_SEGMENT, POOLED_SEGMENT}
        for seg in segments:
            self._add(
                StatsKey(placement, arm, seg),
                seconds(t),
                1.0 if impression else 0.0,
                1.0 if clicked else 0.0,
                epoch,
            )

    def counts(
        self, key: StatsKey, now: float | datetime | None = None, *, epoch: Epoch | None = None
    ) -> Counts:
        """Counts decayed to ``now`` (default: the latest observation). With ``epoch``, a cell
        from any other epoch is stale and reads as empty."""
        cell = self._cells.get(key)  # a plain tuple hashes and compares like a StatsKey
        if cell is None or (epoch is not None and cell.epoch != tuple(epoch)):
            return Counts(epoch=NO_EPOCH if epoch is None else epoch)
        f = 1.0 if now is None else self.decay(max(0.0, seconds(now) - cell.t))
        return Counts(cell.impressions * f, cell.clicks * f, cell.shown, cell.epoch)

    def epoch(self, key: StatsKey) -> Epoch | None:
        cell = self._cells.get(key)
        return None if cell is None else cell.epoch

    def __contains__(self, key: object) -> bool:
        return key in self._cells

    def __len__(self) -> int:
        return len(self._cells)

    def __iter__(self) -> Iterator[StatsKey]:
        return iter(sorted(self._cells))

    def assign(self, other: FeedbackStats) -> None:
        """Overwrite the cells ``other`` holds with its (newer) copies, leaving the rest.

        For a reader that refreshes a long-lived snapshot from a store with the rows changed
        since its last look: each cell is replaced in one step, so a concurrent reader sees
        either the old cell or the new one.
        """
        for key, c in other._cells.items():
            self._cells[key] = _Cell(c.impressions, c.clicks, c.shown, c.t, c.epoch)

    def merge(self, other: FeedbackStats) -> FeedbackStats:
        """Stats as if every observation of both had been made on one (same half-life)."""
        if other.half_life_seconds != self.half_life_seconds:
            raise ValueError("cannot merge stats with different half-lives")
        out = FeedbackStats(self.half_life_seconds)
        for src in (self, other):
            for key, c in src._cells.items():
                mine = out._cells.get(key)
                if mine is None or c.epoch > mine.epoch:
                    out._cells[key] = _Cell(c.impressions, c.clicks, c.shown, c.t, c.epoch)
                elif c.epoch == mine.epoch:
                    t = max(c.t, mine.t)
                    f_old, f_new = out.decay(t - mine.t), out.decay(t - c.t)
                    mine.impressions = mine.impressions * f_old + c.impressions * f_new
                    mine.clicks = mine.clicks * f_old + c.clicks * f_new
                    mine.shown += c.shown
                    mine.t = t
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (an infinite half-life is written as ``None``)."""
        h = self.half_life_seconds
        return {
            "format": FORMAT,
            "half_life_seconds": None if math.isinf(h) else h,
            "arms": [_row(k, c) for k, c in sorted(self._cells.items())],
        }

    def row(self, key: StatsKey) -> dict[str, Any] | None:
        """One cell as a ``to_dict`` row (for stores that save only the cells that changed)."""
        cell = self._cells.get(key)
        return None if cell is None else _row(StatsKey(*key), cell)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackStats:
        if data.get("format") != FORMAT:
            raise ValueError(f"format: unsupported stats format {data.get('format')!r}")
        h = data["half_life_seconds"]
        out = cls(math.inf if h is None else float(h))
        for i, row in enumerate(data["arms"]):
            try:
                key = StatsKey(str(row["placement"]), str(row["arm"]), str(row["segment"]))
                version, start = row["epoch"]
                out._cells[key] = _Cell(
                    float(row["impressions"]),
                    float(row["clicks"]),
                    float(row["shown"]),
                    float(row["t"]),
                    (int(version), float(start)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"arms[{i}]: malformed row ({exc})") from exc
        return out


def _row(k: StatsKey, c: _Cell) -> dict[str, Any]:
    return {
        "placement": k.placement,
        "arm": k.arm,
        "segment": k.segment,
        "impressions": c.impressions,
        "clicks": c.clicks,
        "shown": c.shown,
        "t": c.t,
        "epoch": list(c.epoch),
    }
