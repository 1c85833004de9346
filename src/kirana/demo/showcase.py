"""After the demo events: model lists, content and an experiment, so every part shows.

Loading events alone leaves the personalise API with nothing to serve and the experiments
pages empty; a newcomer would have to learn three subsystems before seeing any of them work.
So the demo finishes by writing its product catalogue to the lake (``products``: names next
to the ids that model tables hold), running the model jobs once, importing a small content
set (``content.json`` next to this module) and starting one experiment.

Each step is idempotent (a second ``kirana serve --demo`` on the same data dir only fills in
what is missing) and failures are reported, not raised: the server keeps running with
whatever did work, and the message says how to redo the step by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kirana.config import Settings
    from kirana.runtime import Platform

EXPERIMENT_KEY = "home-ranking"

METRICS: tuple[dict[str, Any], ...] = (
    {
        "key": "conversion",
        "type": "binomial",
        "event": "Order Completed",
        "window_hours": 72,
        "description": "Ordered within 3 days of first seeing the home feed",
    },
    {
        "key": "orders",
        "type": "count",
        "event": "Order Completed",
        "window_hours": 168,
        "description": "Orders in the week after first exposure",
    },
    {
        "key": "revenue",
        "type": "sum",
        "event": "Order Completed",
        "value": ["revenue", "total"],
        "window_hours": 168,
        "cap": {"type": "percentile", "value": 0.99},
        "description": "Order value in the week after first exposure",
    },
)

EXPERIMENT: dict[str, Any] = {
    "key": EXPERIMENT_KEY,
    "name": "Home feed ranking: learning bandit vs popularity",
    "variations": [
        {
            "key": "bandit",
            "name": "Thompson-sampling bandit",
            "value": {"personalize": {"placement": "home_feed"}},
        },
        {
            "key": "popular",
            "name": "Most popular first",
            "value": {"personalize": {"placement": "home_feed", "policy": "popularity"}},
        },
    ],
    "weights": [0.5, 0.5],
    "hash_attribute": "id",
    "seed": "home-ranking-demo",
    "metrics": ["conversion", "orders", "revenue"],
}


def demo_content() -> dict[str, Any]:
    """The demo's widgets and placements, in the shape ``kirana content import`` reads."""
    return json.loads(resources.files("kirana.demo").joinpath("content.json").read_text())


def run_models(settings: Settings) -> str:
    """Run every model job that has no current output yet, on the embedded engine.

    Evaluation is off: it refits each recommender on a holdout, doubling the time for
    numbers a newcomer does not need yet (``kirana jobs run all`` computes them).
    """
    from kirana.models.jobs.definitions import JOBS
    from kirana.models.jobs.engines import open_engine
    from kirana.models.jobs.runner import JobRunner

    models = settings.models.model_copy(update={"evaluate": False})
    settings = settings.model_copy(update={"models": models})
    started = time.perf_counter()
    engine = open_engine("embedded", models)
    runner = JobRunner(settings, engine=engine)
    done, failed, kept = [], [], []
    try:
        for name in JOBS:
            if runner.registry.current(JOBS[name].output) is not None:
                kept.append(name)
                continue
            run = runner.run(name)
            if run.status == "succeeded":
                published = run.metrics.get("published") or {}
                counts = ", ".join(f"{n} {k}" for k, n in published.items())
                done.append(f"{name} ({counts})" if counts else name)
            else:
                failed.append(f"{name}: {run.error}")
    finally:
        runner.close()
        engine.close()
    if failed:
        raise RuntimeError("; ".join(failed) + " (details: `kirana jobs runs`)")
    seconds = time.perf_counter() - started
    parts = [f"ran {', '.join(done)} in {seconds:.0f}s" if done else ""]
    if kept:
        parts.append(f"kept the current output of {', '.join(kept)}")
    return "model jobs: " + "; ".join(p for p in parts if p)


def install_content(settings: Settings) -> str:
    """Import the demo placements and widgets (unchanged records keep their statistics)."""
    from kirana.serving.content_store import ContentStore, content_path

    store = ContentStore(content_path(settings.state_dir))
    try:
        counts = store.import_bundle(demo_content())
    finally:
        store.close()
    return (
        "content: placements home_feed, product_page, cart "
        f"({counts['created']} records created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged)"
    )


PRODUCTS_TABLE = "products"


def install_catalogue(settings: Settings) -> str:
    """Write the demo catalogue to the lake as ``products`` (once), so that every table
    holding a product id can show its name: ``JOIN products ON product_id = item_id``."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from kirana.demo.instacart import load_sample, product

    path = settings.lake_dir / PRODUCTS_TABLE
    if (path / "_delta_log").is_dir():
        return f"catalogue: kept the lake table {PRODUCTS_TABLE}"
    products = [product(pid) for pid in load_sample().product_ids]
    table = pa.table(
        {
            "product_id": [str(p.product_id) for p in products],
            "name": [p.name for p in products],
            "department": [p.department for p in products],
            "aisle": [p.aisle for p in products],
            "price": [p.price for p in products],
        }
    )
    write_deltalake(str(path), table)
    return (
        f"catalogue: {len(products):,} products in the lake table {PRODUCTS_TABLE} "
        "(names are the invented aisle and the real id: the sample has no product names)"
    )


def start_experiment(platform: Platform) -> str:
    """Save the demo metrics (unless a metric of that key exists) and start ``home-ranking``."""
    from kirana.experiments.platform import experiments
    from kirana.experiments.service import NotFoundError

    service = experiments(platform).service
    for metric in METRICS:
        try:
            service.metric(metric["key"])
        except NotFoundError:
            service.put_metric(metric)
    try:
        status = service.experiment(EXPERIMENT_KEY).status
    except NotFoundError:
        status = service.create(EXPERIMENT).status
    if status == "draft":
        status = service.start(EXPERIMENT_KEY).status
    return f"experiment: {EXPERIMENT_KEY} (bandit vs popular on home_feed) is {status}"


STEPS: tuple[tuple[str, str, Callable[[Platform], str]], ...] = (
    ("catalogue", "kirana serve --demo", lambda p: install_catalogue(p.settings)),
    ("model jobs", "kirana jobs run all", lambda p: run_models(p.settings)),
    ("content", "kirana content import <file>", lambda p: install_content(p.settings)),
    ("experiment", "kirana experiments --help", start_experiment),
)


def complete_demo(platform: Platform, say: Callable[[str], None] = print) -> list[str]:
    """Run every step, each on its own; returns the names of the steps that failed."""
    failed = []
    for name, by_hand, step in STEPS:
        try:
            say(step(platform))
        except Exception as exc:  # reported, not raised: the server keeps running
            failed.append(name)
            say(
                f"demo {name} FAILED: {type(exc).__name__}: {exc}; the rest of the demo works "
                f"without it; redo it by hand (`{by_hand}`) or restart `kirana serve --demo`"
            )
    return failed


def demo_user(settings: Settings) -> str | None:
    """A demo user with buy-again recommendations (to put in the suggested curl)."""
    from kirana.models.jobs.outputs import read_output

    try:
        table = read_output(settings.lake_dir, "buy_again").select(["user_id"])
    except Exception:
        return None
    ids = sorted(set(table.column("user_id").to_pylist()))
    return ids[0] if ids else None


def next_steps(settings: Settings, write_key: str) -> str:
    """What to try now, with real values filled in."""
    from kirana.config import load_settings

    user = demo_user(settings) or "<a user id from model_buy_again>"
    url = f"http://{settings.host}:{settings.port}"
    where = ""  # the CLI finds the default data dir by itself
    if settings.data_dir.resolve() != load_settings(None).data_dir.resolve():
        where = f" --data-dir {settings.data_dir}"
    return "\n".join(
        [
            "next, try:",
            f'  kirana sql{where} "SELECT user_id, item_id, name, score FROM model_buy_again '
            f"JOIN products ON product_id = item_id WHERE user_id = '{user}' ORDER BY rank\"",
            f"  curl -u {write_key}: '{url}/v1/personalize?placement=home_feed&userId={user}'",
            f"  kirana experiments list{where}; kirana experiments report {EXPERIMENT_KEY}{where}",
        ]
    )


__all__ = [
    "EXPERIMENT",
    "METRICS",
    "complete_demo",
    "demo_content",
    "install_catalogue",
    "install_content",
    "next_steps",
    "run_models",
    "start_experiment",
]
