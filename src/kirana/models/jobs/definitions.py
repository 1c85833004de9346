"""The model jobs: what each computes (through the engine), its output and where it publishes.

=============================  ==========================  ===============================
job (= output)                 engine call                 published to
=============================  ==========================  ===============================
buy_again                      ``buy_again``               serving widget ``buy_again``
recommended_for_you            ``recommended_for_you``     serving ``recommended_for_you``
frequently_bought_together     ``associations``            serving (by item, score = lift)
popular                        ``popular``                 serving ``popular`` (key ``*``)
buying_patterns                ``buying_patterns``         computed traits on profiles
=============================  ==========================  ===============================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kirana.models.jobs.engine import (
    ASSOCIATIONS_SCHEMA,
    BUYING_PATTERNS_SCHEMA,
    PER_USER_SCHEMA,
    ModelEngine,
    OrdersSource,
)

if TYPE_CHECKING:
    from kirana.config import ModelSettings


@dataclass(frozen=True)
class Publication:
    """Where an output goes: a serving widget (lists by ``key``) or profile traits."""

    widget: str | None = None
    key: str = "user_id"
    item: str = "item_id"
    score: str = "score"
    traits: bool = False


@dataclass(frozen=True)
class Job:
    name: str
    schema: pa.Schema
    compute: Callable[[ModelEngine, OrdersSource, ModelSettings], pa.Table]
    parameters: Callable[[ModelSettings], dict[str, Any]]
    publication: Publication
    description: str

    @property
    def output(self) -> str:
        return self.name


def _k(s: ModelSettings) -> dict[str, Any]:
    return {"k": s.k}


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "buy_again",
            PER_USER_SCHEMA,
            lambda e, o, s: e.buy_again(o, k=s.k),
            _k,
            Publication(widget="buy_again"),
            "items each customer bought before, most likely to be rebought first (TIFU-KNN)",
        ),
        Job(
            "recommended_for_you",
            PER_USER_SCHEMA,
            lambda e, o, s: e.recommended_for_you(o, k=s.k),
            lambda s: {"k": s.k, "recommender": s.recommender},
            Publication(widget="recommended_for_you"),
            "items each customer has not bought yet (EASE or ALS)",
        ),
        Job(
            "frequently_bought_together",
            ASSOCIATIONS_SCHEMA,
            lambda e, o, s: e.associations(
                o, min_support=s.min_support, min_confidence=s.min_confidence, k=s.k
            ),
            lambda s: {
                "k": s.k,
                "min_support": s.min_support,
                "min_confidence": s.min_confidence,
                "min_pair_orders": s.min_pair_orders,
            },
            Publication(
                widget="frequently_bought_together",
                key="item_id",
                item="related_item_id",
                score="lift",
            ),
            "per item, items in the same orders more often than chance (by lift)",
        ),
        Job(
            "popular",
            PER_USER_SCHEMA,
            lambda e, o, s: e.popular(o, k=s.k),
            _k,
            Publication(widget="popular"),
            "the items in most orders, for everyone (G-TopFreq)",
        ),
        Job(
            "buying_patterns",
            BUYING_PATTERNS_SCHEMA,
            lambda e, o, s: e.buying_patterns(o, horizon_days=s.horizon_days),
            lambda s: {"horizon_days": s.horizon_days},
            Publication(traits=True),
            "per customer: expected orders, P(alive), spend per order, next order date",
        ),
    )
}


class UnknownJob(ValueError):
    """No job has that name."""


def job(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJob(f"no job named {name!r}; jobs: {', '.join(JOBS)} (or `all`)") from None


def conform(table: pa.Table, schema: pa.Schema, engine: str, job_name: str) -> pa.Table:
    """The engine's table in the job's exact schema, or a clear error naming what is wrong."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise TypeError(
            f"engine {engine!r} returned {job_name} without column(s) {missing}; "
            f"expected {schema.names}"
        )
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TypeError(f"engine {engine!r} returned {job_name} with wrong types: {exc}") from exc
