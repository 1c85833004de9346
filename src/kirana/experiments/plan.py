"""An experiment as Kirana stores it: the assignment definition plus how to analyse it.

The JSON form is the assignment definition (``docs/experiments.md``) with two more keys:
``metrics`` (keys of stored metric definitions, the first being the primary metric) and
``analysis`` (engine and settings handed to the stats engine). Splitting them here keeps the
assignment definition exactly what SDKs see and the analysis settings out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from kirana.experiments.assignment.definitions import Experiment, parse_experiment
from kirana.experiments.assignment.validation import Checker, convert

PLAN_KEYS = ("metrics", "analysis")
BOOKKEEPING_KEYS = ("created_at", "updated_at", "started_at", "stopped_at")


class Analysis(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings for :func:`kirana.experiments.stats.analyze` and the metric queries."""

    engine: Literal["frequentist", "bayesian"] = "frequentist"
    alpha: float = 0.05
    sequential: bool = False
    sequential_tuning_n: float = 5000.0
    correction: Literal["none", "holm", "bh", "bonferroni"] = "holm"
    lookback_days: float = 14.0
    """Pre-exposure period for CUPED (0 turns variance reduction off)."""

    def __post_init__(self) -> None:
        check = Checker("analysis")
        if not 0 < self.alpha < 1:
            raise check.fail("alpha", f"must be in (0, 1) (got {self.alpha})")
        if self.sequential and self.engine != "frequentist":
            raise check.fail("sequential", "needs engine 'frequentist'")
        if self.correction != "none" and self.engine != "frequentist":
            raise check.fail("correction", "applies to engine 'frequentist' only; use 'none'")
        if not 0 <= self.lookback_days <= 366:
            raise check.fail("lookback_days", f"must be in [0, 366] (got {self.lookback_days})")
        if self.sequential_tuning_n <= 0:
            raise check.fail("sequential_tuning_n", "must be positive")


class ExperimentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored experiment: definition, metrics, analysis settings and its lifecycle times."""

    experiment: Experiment
    metrics: tuple[str, ...] = ()
    analysis: Analysis = Analysis()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.experiment.key

    @property
    def status(self) -> str:
        return self.experiment.status

    def to_json(self) -> dict[str, Any]:
        out = msgspec.to_builtins(self.experiment)
        out["metrics"] = list(self.metrics)
        out["analysis"] = msgspec.to_builtins(self.analysis)
        for name in BOOKKEEPING_KEYS:
            value = getattr(self, name)
            out[name] = value.isoformat() if value is not None else None
        return out


def parse_record(data: Mapping[str, Any]) -> ExperimentRecord:
    """Split a JSON experiment into its definition and plan, validating both.

    Bookkeeping keys (``created_at`` ...) are ignored so a ``show`` output can be edited and
    sent back.
    """
    key = data.get("key") if isinstance(data, Mapping) else None
    where = f"experiment {key!r}" if key is not None else "experiment"
    check = Checker(where)
    if not isinstance(data, Mapping):
        raise check.fail("(root)", "must be a JSON object")
    body = {k: v for k, v in data.items() if k not in PLAN_KEYS and k not in BOOKKEEPING_KEYS}
    experiment = parse_experiment(body)
    metrics = data.get("metrics", [])
    if isinstance(metrics, str) or not isinstance(metrics, list | tuple):
        raise check.fail("metrics", f"must be a list of metric keys, got {metrics!r}")
    names = check.names("metrics", metrics)
    analysis = convert(data.get("analysis") or {}, Analysis, where, "analysis")
    return ExperimentRecord(experiment=experiment, metrics=names, analysis=analysis)


__all__ = ["Analysis", "ExperimentRecord", "parse_record"]
