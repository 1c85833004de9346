"""``kirana experiments …``: define, start, stop and report on experiments; metrics and flags.

Works on the data dir directly (the same SQLite file the server reads), so it runs while
``kirana serve`` is up; the server picks changes up on its next request.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kirana.cli.options import DataDir, fail

experiments_app = typer.Typer(
    help="Experiments and feature flags: define, start, stop, report.", no_args_is_help=True
)
metrics_app = typer.Typer(
    help="Metric definitions used by experiment reports.", no_args_is_help=True
)
flags_app = typer.Typer(help="Feature flags served to GrowthBook SDKs.", no_args_is_help=True)
experiments_app.add_typer(metrics_app, name="metrics")
experiments_app.add_typer(flags_app, name="flags")

T = TypeVar("T")
FileOption = Annotated[
    Path | None, typer.Option("--file", "-f", help="JSON definition ('-' for standard input).")
]


@contextmanager
def _service(data_dir: Path | None) -> Iterator[Any]:
    from kirana.config import load_settings
    from kirana.experiments.platform import STORE_FILE
    from kirana.experiments.service import ExperimentService
    from kirana.experiments.store import ExperimentStore
    from kirana.runtime import open_profile_store

    settings = load_settings(data_dir)
    store = ExperimentStore(settings.state_dir / STORE_FILE)
    profiles = open_profile_store(settings)
    service = ExperimentService(
        store, known_audiences=lambda: {d.name for d in profiles.definitions("audience")}
    )
    service.settings = settings  # type: ignore[attr-defined]
    try:
        yield service
    finally:
        store.close()
        profiles.close()


def _run(fn: Callable[[], T]) -> T:
    from kirana.experiments.assignment import ExperimentDefinitionError
    from kirana.experiments.service import ConflictError, NotFoundError

    try:
        return fn()
    except (ExperimentDefinitionError, NotFoundError, ConflictError) as exc:
        raise fail(str(exc)) from exc


def _read(path: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"--file: cannot read {path} ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"--file: {path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise fail(f"--file: {path} must hold a JSON object")
    return data


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise fail(
            f"{option}: expected comma-separated numbers like 0.5,0.5, got {text!r}"
        ) from None


def _from_flags(
    key: str | None,
    variations: str | None,
    weights: str | None,
    coverage: float | None,
    metrics: list[str] | None,
    namespace: str | None,
    hash_attribute: str | None,
    seed: str | None,
    holdout: str | None,
) -> dict[str, Any]:
    if not key or not variations:
        raise fail("give --file, or at least --key and --variations (e.g. control,treatment)")
    body: dict[str, Any] = {
        "key": key,
        "variations": [{"key": v.strip()} for v in variations.split(",") if v.strip()],
    }
    if weights:
        body["weights"] = _floats(weights, "--weights")
    if coverage is not None:
        body["coverage"] = coverage
    if metrics:
        body["metrics"] = metrics
    if namespace:
        parts = namespace.split(":")
        if len(parts) != 3:
            raise fail(f"--namespace: expected ID:START:END like checkout:0:0.5, got {namespace!r}")
        body["namespace"] = [parts[0], *_floats(",".join(parts[1:]), "--namespace")]
    for name, value in (("hash_attribute", hash_attribute), ("seed", seed), ("holdout", holdout)):
        if value:
            body[name] = value
    return body


@experiments_app.command("create")
def create(
    file: FileOption = None,
    key: Annotated[str | None, typer.Option(help="Experiment key (without --file).")] = None,
    variations: Annotated[
        str | None, typer.Option(help="Variation keys, control first: control,treatment.")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="Weights summing to 1: 0.5,0.5.")] = None,
    coverage: Annotated[float | None, typer.Option(help="Share of users who enter (0-1).")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Metric key (repeat; first = primary).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Namespace slice ID:START:END, e.g. checkout:0:0.5.")
    ] = None,
    hash_attribute: Annotated[str | None, typer.Option(help="Attribute to hash on.")] = None,
    seed: Annotated[str | None, typer.Option(help="Hash seed (default: the key).")] = None,
    holdout: Annotated[str | None, typer.Option(help="Key of a global holdout experiment.")] = None,
    start: Annotated[bool, typer.Option("--start", help="Start it right away.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a draft experiment from a JSON file or from options.

    Example: kirana experiments create --key hero --variations control,big --metric purchase
    """
    body = (
        _read(file)
        if file is not None
        else _from_flags(
            key, variations, weights, coverage, metric, namespace, hash_attribute, seed, holdout
        )
    )
    with _service(data_dir) as service:
        record = _run(lambda: service.create(body))
        if start:
            try:
                record = _run(lambda: service.start(record.key))
            except typer.Exit:
                typer.secho(f"{record.key} was created as a draft but not started", err=True)
                raise
        _print(record.to_json())


@experiments_app.command("update")
def update(
    key: Annotated[str, typer.Argument(help="Experiment key.")],
    file: FileOption = None,
    data_dir: DataDir = None,
) -> None:
    """Replace a draft experiment's definition from a JSON file."""
    if file is None:
        raise fail("--file: give the new definition (e.g. edit the output of `show`)")
    body = _read(file)
    with _service(data_dir) as service:
        _print(_run(lambda: service.update(key, body)).to_json())


@experiments_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """List experiments: key, status, variations, exposures."""
    with _service(data_dir) as service:
        for record in service.records().values():
            counts = service.store.exposure_counts(record.key)
            arms = ",".join(f"{v.key}={counts.get(v.key, 0)}" for v in record.experiment.variations)
            typer.echo(f"{record.key}\t{record.status}\t{arms}")


@experiments_app.command("show")
def show(
    key: Annotated[str, typer.Argument(help="Experiment key.")], data_dir: DataDir = None
) -> None:
    """Print an experiment's definition, settings and lifecycle times as JSON."""
    with _service(data_dir) as service:
        item = _run(lambda: service.experiment(key)).to_json()
        item["exposures"] = service.store.exposure_counts(key)
        _print(item)


@experiments_app.command("start")
def start_(
    key: Annotated[str, typer.Argument(help="Experiment key.")], data_dir: DataDir = None
) -> None:
    """draft -> running: users are assigned from now on."""
    with _service(data_dir) as service:
        typer.echo(f"{key}: {_run(lambda: service.start(key)).status}")
        for warning in service.start_warnings(key):
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@experiments_app.command("stop")
def stop(
    key: Annotated[str, typer.Argument(help="Experiment key.")], data_dir: DataDir = None
) -> None:
    """running -> stopped: nobody is assigned any more; reports stay available."""
    with _service(data_dir) as service:
        typer.echo(f"{key}: {_run(lambda: service.stop(key)).status}")


@experiments_app.command("delete")
def delete(
    key: Annotated[str, typer.Argument(help="Experiment key.")], data_dir: DataDir = None
) -> None:
    """Delete a draft or stopped experiment."""
    with _service(data_dir) as service:
        _run(lambda: service.delete(key))
        typer.echo(f"{key}: deleted")


@experiments_app.command("assign")
def assign(
    user_id: Annotated[str | None, typer.Option(help="The user's id.")] = None,
    anonymous_id: Annotated[str | None, typer.Option(help="The anonymous id.")] = None,
    attributes: Annotated[str, typer.Option(help="Targeting attributes as JSON.")] = "{}",
    data_dir: DataDir = None,
) -> None:
    """Show which variations a user gets (a dry run: no exposure is logged)."""
    from kirana.experiments.exposures import Assigner, user_attributes

    if not user_id and not anonymous_id:
        raise fail("give --user-id or --anonymous-id")
    try:
        attrs = json.loads(attributes)
    except json.JSONDecodeError as exc:
        raise fail(f"--attributes: not valid JSON ({exc})") from exc
    with _service(data_dir) as service:
        assigner = Assigner(service, service.store, lambda events: None)
        result = assigner.assign(user_attributes(user_id, anonymous_id, attrs))
        _print([x.as_dict() for x in result])


@experiments_app.command("payload")
def payload(data_dir: DataDir = None) -> None:
    """Print the GrowthBook SDK features payload (what GET /api/features/{key} serves)."""
    with _service(data_dir) as service:
        _print(service.payload())


@experiments_app.command("report")
def report(
    key: Annotated[str, typer.Argument(help="Experiment key.")],
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    plots: Annotated[
        Path | None, typer.Option(help="Write PNG charts (one per metric, and lift.png) here.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Analyse an experiment over the lake: lift, intervals, p-values or chance to beat
    control, SRM, cumulative effect by day, platform and new/returning breakdowns."""
    from kirana.experiments import analyse
    from kirana.experiments.reports import render_table

    if format not in ("table", "json"):
        raise fail(f"--format: must be table or json, got {format!r}")
    with _service(data_dir) as service:
        typer.secho(f"analysing {key} over the lake…", err=True, fg=typer.colors.BRIGHT_BLACK)
        # always fresh from the CLI; stored, so the API serves it until the next one
        result = _run(lambda: analyse.latest_report(service.settings, service, key, refresh=True))
    if plots is not None:
        from kirana.experiments import plots as charts

        plots.mkdir(parents=True, exist_ok=True)
        (plots / "lift.png").write_bytes(charts.lift_png(result))
        for metric in result["cumulative"]:
            (plots / f"{metric}.png").write_bytes(charts.metric_png(result, metric))
        (plots / "report.json").write_text(json.dumps(result, indent=2))
        typer.secho(f"charts written to {plots}", err=True, fg=typer.colors.BRIGHT_BLACK)
    if format == "json":
        _print(result)
    else:
        typer.echo(render_table(result))


def _save(kind: str, key: str, file: Path | None, data_dir: Path | None) -> None:
    import msgspec

    if file is None:
        raise fail("--file: give the JSON definition")
    body = {**_read(file), "key": key}
    with _service(data_dir) as service:
        save = service.put_metric if kind == "metric" else service.put_flag
        _print(msgspec.to_builtins(_run(lambda: save(body))))


@metrics_app.command("save")
def metrics_save(
    key: Annotated[str, typer.Argument(help="Metric key, e.g. purchase.")],
    file: FileOption = None,
    data_dir: DataDir = None,
) -> None:
    """Create or replace a metric from JSON (types binomial, count, sum, ratio)."""
    _save("metric", key, file, data_dir)


@metrics_app.command("list")
def metrics_list(data_dir: DataDir = None) -> None:
    """List metric definitions as JSON lines."""
    import msgspec

    with _service(data_dir) as service:
        for metric in service.metrics():
            typer.echo(json.dumps(msgspec.to_builtins(metric)))


@metrics_app.command("delete")
def metrics_delete(key: Annotated[str, typer.Argument()], data_dir: DataDir = None) -> None:
    """Delete a metric no experiment uses."""
    with _service(data_dir) as service:
        _run(lambda: service.delete_metric(key))


@flags_app.command("save")
def flags_save(
    key: Annotated[str, typer.Argument(help="Flag key.")],
    file: FileOption = None,
    data_dir: DataDir = None,
) -> None:
    """Create or replace a feature flag from JSON."""
    _save("flag", key, file, data_dir)


@flags_app.command("list")
def flags_list(data_dir: DataDir = None) -> None:
    """List feature flags as JSON lines."""
    import msgspec

    with _service(data_dir) as service:
        for flag in service.flags():
            typer.echo(json.dumps(msgspec.to_builtins(flag)))


@flags_app.command("delete")
def flags_delete(key: Annotated[str, typer.Argument()], data_dir: DataDir = None) -> None:
    """Delete a feature flag."""
    with _service(data_dir) as service:
        _run(lambda: service.delete_flag(key))
