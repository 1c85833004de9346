"""Runs model jobs: lock, record, compute on an engine, land the output, publish, roll back.

A run is all or nothing, in this order:

1. take the job's lock (one run of a job at a time) and record the run as ``running``;
2. pin the input: the current Delta version of ``events`` (and of any extra order tables),
   recorded as the run's data version, which the engine then reads;
3. compute on the engine (any `ModelEngine`) and check the table against the job's schema;
4. overwrite the output's Delta table in one commit (`outputs.write_output`);
5. publish to serving or to profiles, each one atomic swap; if that fails the output table
   is restored to its previous version, so lake and serving keep agreeing;
6. record ``succeeded`` with metrics and the output version.

Any failure before step 6 records ``failed`` with the error and leaves the previous output
and what serving shows untouched.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from kirana.config import Settings
from kirana.lake.catalog import lake_tables
from kirana.models.jobs import outputs
from kirana.models.jobs.definitions import JOBS, Job, conform, job
from kirana.models.jobs.engine import ModelEngine, OrdersSource, metrics_of
from kirana.models.jobs.engines import open_engine
from kirana.models.jobs.locks import JobBusy, job_lock
from kirana.models.jobs.publish import publish_lists, publish_traits
from kirana.models.jobs.registry import Run, RunRegistry, registry_path

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class RollbackError(ValueError):
    """The rollback asked for is not possible (the message says why)."""


class JobRunner:
    """Runs jobs of one data dir.

    ``engine`` (any `ModelEngine`) overrides ``models.engine``; ``extra_tables`` overrides
    ``models.extra_order_tables``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: ModelEngine | None = None,
        extra_tables: tuple[str, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        if extra_tables is None:
            extra_tables = tuple(settings.models.extra_order_tables)
        self.extra_tables = extra_tables
        self.registry = RunRegistry(registry_path(settings.state_dir))

    def close(self) -> None:
        self.registry.close()

    def reap_interrupted(self) -> int:
        """Mark ``running`` rows failed for every job whose lock is free (their process died).

        Cheap (one non-blocking lock attempt per job); listings call it so that a run killed
        with its process does not show as running forever.
        """
        reaped = 0
        for name in JOBS:
            try:
                with job_lock(self.settings.state_dir / "jobs", name, "a registry check"):
                    reaped += self.registry.interrupt_running(name)
            except JobBusy:
                continue
        return reaped

    # -- running -----------------------------------------------------------------------------
    def run(self, name: str, *, engine: str | None = None, progress: Progress | None = None) -> Run:
        """Run one job (``all`` is `run_all`); returns its registry row, failed or not."""
        spec = job(name)
        step = progress or (lambda _: None)
        models = self.settings.models
        engine_name = self.engine.name if self.engine is not None else engine or models.engine
        with job_lock(self.settings.state_dir / "jobs", spec.name, "a run"):
            self.registry.interrupt_running(spec.name)
            params = spec.parameters(models)
            run_id = self.registry.start(spec.name, engine_name, params, output=spec.output)
            started = time.perf_counter()
            chosen: ModelEngine | None = self.engine
            try:
                if chosen is None:
                    step(f"starting the {engine_name} engine")
                    chosen = open_engine(engine_name, models)
                metrics, output_version = self._run(spec, chosen, run_id, step)
            except Exception as exc:
                log.exception("model job %s (run %s) failed", spec.name, run_id)
                self.registry.fail(run_id, f"{type(exc).__name__}: {exc}", _since(started))
            else:
                self.registry.succeed(
                    run_id, metrics=metrics, output_version=output_version, seconds=_since(started)
                )
            finally:
                if chosen is not None and self.engine is None:
                    chosen.close()
        step("done")
        found = self.registry.get(run_id)
        assert found is not None
        return found

    def run_all(self, *, engine: str | None = None, progress: Progress | None = None) -> list[Run]:
        """Every job in turn on one engine (one Spark session); a failure does not stop the rest."""
        if self.engine is not None:
            return [self.run(name, progress=progress) for name in JOBS]
        try:
            shared = open_engine(engine or self.settings.models.engine, self.settings.models)
        except Exception:  # each run then records why the engine would not start
            return [self.run(name, engine=engine, progress=progress) for name in JOBS]
        self.engine = shared
        try:
            return [self.run(name, progress=progress) for name in JOBS]
        finally:
            self.engine = None
            shared.close()

    def _run(
        self, spec: Job, engine: ModelEngine, run_id: str, step: Progress
    ) -> tuple[dict[str, Any], int]:
        source, data_version = self._pin_input()
        self.registry.set_data_version(run_id, data_version)
        engine_params = getattr(engine, "params", None)
        if engine_params:
            self.registry.add_parameters(run_id, {"engine_params": engine_params})
        step(f"computing {spec.name} on the {engine.name} engine")
        computed = time.perf_counter()
        table = spec.compute(engine, source, self.settings.models)
        metrics = {**metrics_of(table), "compute_seconds": _since(computed)}
        table = conform(table, spec.schema, engine.name, spec.name)
        metrics["output_rows"] = table.num_rows
        step(f"writing lake table {outputs.table_name(spec.output)}")
        lake = self.settings.lake_dir
        previous = outputs.current_version(lake, spec.output)
        version = outputs.write_output(lake, spec.output, table, run_id)
        step("publishing")
        try:
            metrics["published"] = self._publish(spec, table, run_id)
        except Exception as exc:
            try:
                self._undo_write(spec.output, previous, run_id)
            except Exception as undo:
                raise RuntimeError(
                    f"publishing failed ({exc}) and restoring {outputs.table_name(spec.output)} "
                    f"to version {previous} failed too ({undo}): roll it back with "
                    f"`kirana jobs rollback {spec.output} --to <the last good run>`"
                ) from exc
            raise
        self._vacuum(spec.output)
        return metrics, version

    def _pin_input(self) -> tuple[OrdersSource, dict[str, Any]]:
        tables = lake_tables(self.settings.lake_dir)
        versions: dict[str, Any] = {}
        for name in ("events", *self.extra_tables):
            if name in tables:
                versions[name] = DeltaTable(tables[name]).version()
        source = OrdersSource(
            self.settings.lake_dir,
            version=versions.get("events"),
            extra_tables=self.extra_tables,
        )
        return source, versions

    def _publish(self, spec: Job, table: pa.Table, version: str) -> dict[str, int]:
        from kirana.runtime import open_profile_store

        pub = spec.publication
        profiles = open_profile_store(self.settings)
        try:
            if pub.traits:
                return publish_traits(
                    profiles, table, horizon_days=self.settings.models.horizon_days
                )
            from kirana.serving.store import ServingStore, serving_path

            serving = ServingStore(serving_path(self.settings.state_dir))
            try:
                assert pub.widget is not None
                return publish_lists(
                    serving,
                    pub.widget,
                    table,
                    key=pub.key,
                    item=pub.item,
                    score=pub.score,
                    version=version,
                    suppressed=profiles.suppressed(),
                )
            finally:
                serving.close()
        finally:
            profiles.close()

    def _undo_write(self, output: str, previous: int | None, run_id: str) -> None:
        """Put the output table back as it was before this run wrote it."""
        lake = self.settings.lake_dir
        if previous is None:
            shutil.rmtree(outputs.table_path(lake, output), ignore_errors=True)
        else:
            outputs.restore_output(lake, output, previous, f"{run_id}-undo")

    def _vacuum(self, output: str) -> None:
        days = self.settings.models.output_retention_days
        try:
            outputs.vacuum_output(self.settings.lake_dir, output, timedelta(days=days))
        except Exception:  # housekeeping only: the run itself succeeded
            log.exception("vacuuming output %s failed; will retry after the next run", output)

    # -- rollback ----------------------------------------------------------------------------
    def rollback(self, output: str, to_run: str, *, progress: Progress | None = None) -> Run:
        """Make ``to_run``'s output current again, in the lake and where it is published."""
        spec = job(output)
        step = progress or (lambda _: None)
        target = self.registry.get(to_run)
        if target is None:
            raise RollbackError(f"no run {to_run!r}; list runs with `kirana jobs runs`")
        if target.output != spec.output or target.status != "succeeded":
            raise RollbackError(
                f"run {to_run!r} is a {target.status} run of {target.job!r}, not a succeeded "
                f"run of {output!r}: pick one from `kirana jobs runs --job {output}`"
            )
        if target.output_version is None:
            raise RollbackError(f"run {to_run!r} wrote no output version")
        with job_lock(self.settings.state_dir / "jobs", spec.name, f"rollback to {to_run}"):
            self.registry.interrupt_running(spec.name)
            params = {"to_run": to_run, "to_version": target.output_version}
            run_id = self.registry.start(
                spec.name,
                target.engine,
                params,
                kind="rollback",
                output=spec.output,
                rolled_back_to=to_run,
            )
            started = time.perf_counter()
            lake = self.settings.lake_dir
            try:
                self.registry.set_data_version(run_id, target.data_version)
                previous = outputs.current_version(lake, spec.output)
                table_name = outputs.table_name(spec.output)
                step(f"restoring {table_name} to version {target.output_version}")
                version = outputs.restore_output(lake, spec.output, target.output_version, run_id)
                table = outputs.read_output(lake, spec.output)
                step("publishing")
                try:
                    published = self._publish(spec, table.drop_columns(["run_id"]), to_run)
                except Exception:
                    if previous is not None:
                        outputs.restore_output(lake, spec.output, previous, f"{run_id}-undo")
                    raise
            except Exception as exc:
                self.registry.fail(run_id, f"{type(exc).__name__}: {exc}", _since(started))
            else:
                metrics = {**target.metrics, "published": published}
                self.registry.succeed(
                    run_id, metrics=metrics, output_version=version, seconds=_since(started)
                )
        found = self.registry.get(run_id)
        assert found is not None
        return found


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


__all__ = ["JobRunner", "RollbackError"]
