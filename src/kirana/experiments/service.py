"""Managing experiments, flags and metrics: validation, lifecycle and the cached registry.

Routes and CLI commands call this and know nothing of SQLite; it knows nothing of HTTP. Every
write validates the whole resulting set (:class:`~kirana.experiments.assignment.Registry`)
inside one write transaction, so an invalid set - an unknown holdout, two running experiments
overlapping in a namespace - is refused with an error naming the field, and never stored.

Lifecycle: an experiment is created as ``draft`` (editable), ``start`` makes it ``running``
(assigning users; definition frozen so the analysis means something), ``stop`` makes it
``stopped`` (assigns nobody; reports stay available). A stopped experiment is not restarted:
create a new one (a new key or seed) so the two runs are not mixed in one analysis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from kirana.experiments.assignment import (
    ExperimentDefinitionError,
    ExperimentRule,
    FeatureFlag,
    ForceRule,
    Registry,
    features_payload,
    parse_flag,
)
from kirana.experiments.metrics import Metric, parse_metric
from kirana.experiments.plan import BOOKKEEPING_KEYS, ExperimentRecord, parse_record
from kirana.experiments.store import ExperimentStore


class NotFoundError(LookupError):
    """No experiment, flag or metric with that key."""


class ConflictError(ValueError):
    """The request is valid but the current state forbids it (lifecycle, key taken, in use)."""


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def load_record(definition: Mapping[str, Any]) -> ExperimentRecord:
    """A stored JSON experiment back as a record, lifecycle times included."""
    record = parse_record(definition)
    times = {k: _moment(definition.get(k)) for k in BOOKKEEPING_KEYS}
    return msgspec.structs.replace(record, **times)


class ExperimentService:
    """Definitions with their whole-set rules; ``known_audiences`` (optional) lists the
    audience names targeting may use, so a typo is refused instead of matching nobody."""

    def __init__(
        self,
        store: ExperimentStore,
        known_audiences: Callable[[], set[str]] | None = None,
    ) -> None:
        self.store = store
        self._known_audiences = known_audiences
        self._cache_lock = threading.Lock()
        self._cached: tuple[int, Registry, dict[str, ExperimentRecord], dict[str, str]] | None = (
            None
        )

    # -- reading --------------------------------------------------------------------

    def records(self) -> dict[str, ExperimentRecord]:
        return self._snapshot()[2]

    def registry(self) -> Registry:
        """The current definitions as a validated registry, rebuilt only when they change."""
        return self._snapshot()[1]

    def revision(self) -> int:
        return self._snapshot()[0]

    def runs(self) -> dict[str, str]:
        """Experiment key -> its run id (start time, ISO), for exposure messageIds."""
        return self._snapshot()[3]

    def _snapshot(self) -> tuple[int, Registry, dict[str, ExperimentRecord], dict[str, str]]:
        revision = self.store.revision()
        cached = self._cached
        if cached is not None and cached[0] == revision:
            return cached
        with self._cache_lock:
            records = {d.key: load_record(d.definition) for d in self.store.all("experiment")}
            flags = [parse_flag(d.definition) for d in self.store.all("flag")]
            registry = Registry([r.experiment for r in records.values()], flags)
            runs = {k: r.started_at.isoformat() if r.started_at else "" for k, r in records.items()}
            self._cached = (revision, registry, records, runs)
            return self._cached

    def experiment(self, key: str) -> ExperimentRecord:
        stored = self.store.get("experiment", key)
        if stored is None:
            raise NotFoundError(f"no experiment {key!r}; list them with `kirana experiments list`")
        record = load_record(stored.definition)
        return msgspec.structs.replace(
            record, created_at=stored.created_at, updated_at=stored.updated_at
        )

    def metric(self, key: str) -> Metric:
        stored = self.store.get("metric", key)
        if stored is None:
            raise NotFoundError(f"no metric {key!r}; create it with `kirana experiments metric`")
        return parse_metric(stored.definition)

    def metrics(self) -> list[Metric]:
        return [parse_metric(d.definition) for d in self.store.all("metric")]

    def flags(self) -> list[FeatureFlag]:
        return [parse_flag(d.definition) for d in self.store.all("flag")]

    def payload(self, now: datetime | None = None) -> dict[str, Any]:
        """The GrowthBook SDK features payload of the current definitions."""
        return features_payload(self.registry(), now=now)

    # -- experiments ----------------------------------------------------------------

    def create(self, data: Mapping[str, Any]) -> ExperimentRecord:
        record = parse_record(data)
        if record.status != "draft":
            raise ExperimentDefinitionError(
                f"experiment {record.key!r}",
                "status",
                f"new experiments start as 'draft' (got {record.status!r}); "
                "run `kirana experiments start` to launch",
            )
        with self.store.write():
            if self.store.get("experiment", record.key) is not None:
                raise ConflictError(f"experiment {record.key!r} already exists")
            self._save(record)
        return self.experiment(record.key)

    def update(self, key: str, data: Mapping[str, Any]) -> ExperimentRecord:
        """Replace a draft's definition (running and stopped experiments are frozen)."""
        record = parse_record({**data, "key": key})
        with self.store.write():
            current = self._current(key)
            if current.status != "draft":
                raise ConflictError(
                    f"experiment {key!r} is {current.status}; only drafts can be edited "
                    "(create a new experiment instead)"
                )
            if record.status != "draft":
                raise ExperimentDefinitionError(
                    f"experiment {key!r}", "status", "change status with start/stop, not update"
                )
            self._save(record)
        return self.experiment(key)

    def start(self, key: str) -> ExperimentRecord:
        return self._transition(key, "draft", "running", "started_at")

    def stop(self, key: str) -> ExperimentRecord:
        return self._transition(key, "running", "stopped", "stopped_at")

    def start_warnings(self, key: str, now: datetime | None = None) -> list[str]:
        """Why the experiment would assign nobody, if it would (say them when starting)."""
        from kirana.experiments.launch import start_warnings

        return start_warnings(self.experiment(key).experiment, now or datetime.now(UTC))

    def delete(self, key: str) -> None:
        with self.store.write():
            current = self._current(key)
            if current.status == "running":
                raise ConflictError(f"experiment {key!r} is running; stop it first")
            users = [
                r.key for r in self._records_in_tx().values() if r.experiment.holdout == key
            ] + [
                f.key
                for f in self.flags()
                if any(isinstance(r, ExperimentRule) and r.experiment == key for r in f.rules)
            ]
            if users:
                raise ConflictError(f"experiment {key!r} is used by {', '.join(sorted(users))}")
            self.store.delete("experiment", key)
            self.store.forget_exposures(key)
            self.store.forget_report(key)

    def _current(self, key: str) -> ExperimentRecord:
        stored = self.store.get("experiment", key)
        if stored is None:
            raise NotFoundError(f"no experiment {key!r}; list them with `kirana experiments list`")
        return load_record(stored.definition)

    def _transition(self, key: str, source: str, target: str, stamp: str) -> ExperimentRecord:
        with self.store.write():
            current = self._current(key)
            if current.status != source:
                verb = "start" if target == "running" else "stop"
                raise ConflictError(
                    f"cannot {verb} experiment {key!r}: it is {current.status}, not {source}"
                )
            experiment = msgspec.structs.replace(current.experiment, status=target)
            record = msgspec.structs.replace(
                current, experiment=experiment, **{stamp: datetime.now(UTC)}
            )
            self._save(record)
        return self.experiment(key)

    def _records_in_tx(self) -> dict[str, ExperimentRecord]:
        return {d.key: load_record(d.definition) for d in self.store.all("experiment")}

    def _save(self, record: ExperimentRecord) -> None:
        """Validate ``record`` against everything else stored, then write it (in a tx)."""
        where = f"experiment {record.key!r}"
        for i, name in enumerate(record.metrics):
            if self.store.get("metric", name) is None:
                raise ExperimentDefinitionError(
                    where, f"metrics[{i}]", f"unknown metric {name!r}; create it first"
                )
        self._check_audiences(where, "audiences", record.experiment.audiences)
        records = self._records_in_tx()
        records[record.key] = record
        Registry([r.experiment for r in records.values()], self.flags())
        self.store.put("experiment", record.key, record.to_json())

    def _check_audiences(self, where: str, field: str, names: tuple[str, ...]) -> None:
        if not names or self._known_audiences is None:
            return
        known = self._known_audiences()
        for i, name in enumerate(names):
            if name not in known:
                hint = ", ".join(sorted(known)[:10]) or "none defined yet"
                raise ExperimentDefinitionError(
                    where, f"{field}[{i}]", f"unknown audience {name!r} (known: {hint})"
                )

    # -- flags and metrics ----------------------------------------------------------

    def put_flag(self, data: Mapping[str, Any]) -> FeatureFlag:
        flag = parse_flag(data)
        for i, rule in enumerate(flag.rules):
            if isinstance(rule, ForceRule):
                self._check_audiences(f"flag {flag.key!r}", f"rules[{i}].audiences", rule.audiences)
        with self.store.write():
            flags = {f.key: f for f in self.flags()}
            flags[flag.key] = flag
            Registry([r.experiment for r in self._records_in_tx().values()], flags.values())
            self.store.put("flag", flag.key, msgspec.to_builtins(flag))
        return flag

    def delete_flag(self, key: str) -> None:
        with self.store.write():
            if not self.store.delete("flag", key):
                raise NotFoundError(f"no flag {key!r}")

    def put_metric(self, data: Mapping[str, Any]) -> Metric:
        metric = parse_metric(data)
        with self.store.write():
            self.store.put("metric", metric.key, msgspec.to_builtins(metric))
        return metric

    def delete_metric(self, key: str) -> None:
        with self.store.write():
            users = [r.key for r in self._records_in_tx().values() if key in r.metrics]
            if users:
                raise ConflictError(f"metric {key!r} is used by {', '.join(sorted(users))}")
            if not self.store.delete("metric", key):
                raise NotFoundError(f"no metric {key!r}")


__all__ = ["ConflictError", "ExperimentService", "NotFoundError", "load_record"]
