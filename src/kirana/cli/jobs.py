"""``kirana jobs``: run model jobs on demand, see their runs, roll an output back."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from kirana.cli.options import DataDir, fail

jobs_app = typer.Typer(
    help="Model jobs over the lake (buy again, recommended for you, frequently bought "
    "together, popular, buying patterns): run, history, rollback.",
    no_args_is_help=True,
)

Format = Annotated[str, typer.Option("--format", help="text or json.")]


def _settings(data_dir, **models: Any):
    from kirana.config import load_settings

    settings = load_settings(data_dir)
    updates = {k: v for k, v in models.items() if v is not None}
    if updates:
        settings.models = settings.models.model_copy(update=updates)
    return settings


def _runner(settings, extra_tables: tuple[str, ...] | None = None, engine=None):
    from kirana.models.jobs.runner import JobRunner

    return JobRunner(settings, extra_tables=extra_tables, engine=engine)


def _check_format(format: str) -> None:
    if format not in ("text", "json"):
        raise fail("--format must be text or json")


def _summary(run) -> str:
    where = f"v{run.output_version}" if run.output_version is not None else "-"
    what = run.error if run.status == "failed" else _headline(run.metrics)
    return f"{run.run_id}\t{run.job}\t{run.kind}\t{run.status}\t{where}\t{what}"


def _headline(metrics: dict[str, Any]) -> str:
    keys = ("output_rows", "holdout_recall@10", "holdout_ndcg@10", "holdout_new_recall@10")
    parts = [f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), int | float)]
    published = metrics.get("published")
    if published:
        parts.append("published " + ", ".join(f"{k}={v}" for k, v in published.items()))
    return " ".join(parts)


@jobs_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Job name (see `kirana jobs list`) or `all`.")],
    engine: Annotated[
        str | None, typer.Option(help="embedded or spark (default: the models.engine setting).")
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, max=500, help="Items per list.")] = None,
    evaluate: Annotated[
        bool | None,
        typer.Option("--evaluate/--no-evaluate", help="Also score on a last-order holdout."),
    ] = None,
    extra_table: Annotated[
        list[str] | None,
        typer.Option(
            help="A lake table of order lines to add (user_id, order_id, "
            "order_time, product_id[, amount]); repeatable \\[default: models.extra_order_tables]."
        ),
    ] = None,
    format: Format = "text",
    data_dir: DataDir = None,
) -> None:
    """Run a job now (or `all`), with progress; exits 1 if a run failed."""
    _check_format(format)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TimeElapsedColumn

    from kirana.models.jobs.definitions import JOBS, UnknownJob
    from kirana.models.jobs.locks import JobBusy

    if engine is not None and engine not in ("embedded", "spark"):
        raise fail("--engine must be embedded or spark")
    names = list(JOBS) if name == "all" else [name]
    if name != "all" and name not in JOBS:
        raise fail(str(UnknownJob(f"no job named {name!r}; jobs: {', '.join(JOBS)} (or `all`)")))
    settings = _settings(data_dir, k=k, evaluate=evaluate)
    shared = None
    if name == "all":  # one engine for every job (one Spark session, not five)
        from kirana.models.jobs.engines import EngineUnavailable, open_engine

        try:
            shared = open_engine(engine or settings.models.engine, settings.models)
        except EngineUnavailable as exc:
            raise fail(str(exc)) from exc
    runner = _runner(settings, tuple(extra_table) if extra_table else None, shared)
    results = []
    try:
        with Progress(
            SpinnerColumn(),
            "[progress.description]{task.description}",
            BarColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as progress:
            for job_name in names:
                task = progress.add_task(job_name, total=5)

                def step(message: str, task=task, job_name=job_name) -> None:
                    progress.update(task, description=f"{job_name}: {message}", advance=1)

                try:
                    results.append(runner.run(job_name, engine=engine, progress=step))
                except JobBusy as exc:
                    raise fail(str(exc)) from exc
                progress.update(task, completed=5)
    finally:
        runner.close()
        if shared is not None:
            shared.close()
    if format == "json":
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            typer.echo(_summary(r))
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        raise fail(
            f"{len(failed)} run(s) failed; previous outputs stay in place. "
            f"Details: `kirana jobs show {failed[0].run_id}`"
        )


@jobs_app.command("list")
def list_jobs(format: Format = "text", data_dir: DataDir = None) -> None:
    """The jobs, their schedule, output table and current run."""
    _check_format(format)
    from kirana.models.jobs.definitions import JOBS
    from kirana.models.jobs.outputs import table_name

    settings = _settings(data_dir)
    runner = _runner(settings)
    schedule = settings.models.schedule.model_dump()
    rows = []
    try:
        runner.reap_interrupted()
        for spec in JOBS.values():
            current = runner.registry.current(spec.output)
            last = runner.registry.runs(spec.name, limit=1)
            rows.append(
                {
                    "job": spec.name,
                    "description": spec.description,
                    "every_minutes": schedule.get(spec.name, 0),
                    "output_table": table_name(spec.output),
                    "current_run": current.run_id if current else None,
                    "current_version": current.output_version if current else None,
                    "last_run": last[0].run_id if last else None,
                    "last_status": last[0].status if last else None,
                }
            )
    finally:
        runner.close()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        every = f"every {r['every_minutes']:g} min" if r["every_minutes"] else "not scheduled"
        current = f"{r['current_run']} (v{r['current_version']})" if r["current_run"] else "-"
        last = f"last {r['last_status']}" if r["last_run"] else "never run"
        typer.echo(f"{r['job']}\t{every}\t{r['output_table']}\tcurrent {current}\t{last}")
        typer.echo(f"\t{r['description']}")


@jobs_app.command("runs")
def runs(
    job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
    format: Format = "text",
    data_dir: DataDir = None,
) -> None:
    """Run history, newest first: id, job, kind, status, output version, headline metrics."""
    _check_format(format)
    from kirana.models.jobs.definitions import JOBS

    if job is not None and job not in JOBS:
        raise fail(f"no job named {job!r}; jobs: {', '.join(JOBS)}")
    runner = _runner(_settings(data_dir))
    try:
        runner.reap_interrupted()
        found = runner.registry.runs(job, limit)
    finally:
        runner.close()
    if format == "json":
        typer.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        typer.echo("no runs yet; start one with `kirana jobs run all`")
    for r in found:
        typer.echo(_summary(r))


@jobs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="A run id from `kirana jobs runs`.")],
    data_dir: DataDir = None,
) -> None:
    """Everything recorded about one run, as JSON."""
    runner = _runner(_settings(data_dir))
    try:
        runner.reap_interrupted()
        found = runner.registry.get(run_id)
    finally:
        runner.close()
    if found is None:
        raise fail(f"no run {run_id!r}; list runs with `kirana jobs runs`")
    typer.echo(json.dumps(found.as_dict(), indent=2))


@jobs_app.command("rollback")
def rollback(
    output: Annotated[str, typer.Argument(help="The output (= job name) to roll back.")],
    to: Annotated[str, typer.Option("--to", help="The earlier run whose output to restore.")],
    data_dir: DataDir = None,
) -> None:
    """Restore an earlier run's output in the lake and publish it again."""
    from kirana.models.jobs.definitions import UnknownJob
    from kirana.models.jobs.locks import JobBusy
    from kirana.models.jobs.runner import RollbackError

    runner = _runner(_settings(data_dir))
    try:
        result = runner.rollback(output, to)
    except (UnknownJob, RollbackError, JobBusy) as exc:
        raise fail(str(exc)) from exc
    finally:
        runner.close()
    typer.echo(_summary(result))
    if result.status != "succeeded":
        raise fail(f"rollback failed; {output} is unchanged: {result.error}")
