"""Send simulated shoppers through the tracking API, as a real app would.

The demo goes through HTTP on purpose: it exercises exactly the path users'
SDKs take (auth, validation, the durable log, the consumers), so a working
demo is evidence that the product works, not a side door into the lake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

BATCH_SIZE = 100
DEMO_SOURCE = "demo"
DEMO_LOADED = "demo.loaded"
DEMO_EXPERIMENT_TRAFFIC = "demo.experiment_traffic"


@dataclass
class SendStats:
    sent: int = 0
    rejected: int = 0
    seconds: float = 0.0


def _batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def post_batches(
    url: str,
    write_key: str,
    events: Iterable[dict[str, Any]],
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SendStats:
    """POST events in batches of 100 with retries on 429/5xx (never drops a batch)."""
    stats = SendStats()
    lock = threading.Lock()
    encoder = msgspec.json.Encoder()
    started = time.perf_counter()
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:

        def send(batch: list[dict[str, Any]]) -> None:
            body = encoder.encode({"batch": batch, "sentAt": _now_iso()})
            delay = 0.2
            while True:
                try:
                    response = client.post(
                        "/v1/batch", content=body, headers={"Content-Type": "application/json"}
                    )
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code == 200:
                    rejected = len(response.json().get("rejected", []))
                    with lock:
                        stats.sent += len(batch) - rejected
                        stats.rejected += rejected
                    if on_progress:
                        on_progress(len(batch))
                    return
                if response is not None and response.status_code not in (429, 500, 502, 503, 504):
                    raise RuntimeError(
                        f"demo batch refused: {response.status_code} {response.text}"
                    )
                if should_stop():
                    return
                wait = (
                    float(response.headers.get("Retry-After", delay))
                    if response is not None
                    else delay
                )
                time.sleep(wait)
                delay = min(delay * 2, 5.0)

        with ThreadPoolExecutor(concurrency) as pool:
            pending = []
            for batch in _batches(events, BATCH_SIZE):
                if should_stop():
                    break
                pending.append(pool.submit(send, batch))
                if len(pending) >= concurrency * 4:
                    pending.pop(0).result()
            for future in pending:
                future.result()
    stats.seconds = time.perf_counter() - started
    return stats


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def demo_events(users: int | None = None, seed: int = 0) -> tuple[int, Iterator[dict[str, Any]]]:
    """(estimated number of events, the event stream) for the demo data set."""
    from kirana.demo.instacart import load_histories
    from kirana.demo.simulator import estimate_events, simulate

    histories = load_histories()
    return estimate_events(histories, users=users), simulate(histories, users=users, seed=seed)


def send_demo(
    url: str,
    write_key: str,
    *,
    users: int | None = None,
    seed: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
) -> SendStats:
    """Send the demo through ``url`` with a progress bar on the terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    total, events = demo_events(users, seed)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("demo events", total=total)
        return post_batches(
            url,
            write_key,
            events,
            on_progress=lambda n: progress.advance(task, n),
            should_stop=should_stop,
        )


def load_demo_once(
    platform: Any, url: str, *, users: int | None = None, should_stop=lambda: False
) -> None:
    """Load the demo into a running platform unless it was loaded before, then make sure
    model lists, content and the demo experiment are in place (each step idempotent)."""
    from kirana.demo.showcase import complete_demo, next_steps

    store = platform.store
    write_key = _demo_write_key(store)
    if store.get_setting(DEMO_LOADED):
        print("demo data already loaded; checking models, content and the experiment")
    else:
        stats = send_demo(url, write_key, users=users, should_stop=should_stop)
        if should_stop():
            return
        platform.drain(timeout=600)
        report = _define_segments(platform)
        store.set_setting(DEMO_LOADED, str(stats.sent))
        print(report)
        print(f"demo loaded: {stats.sent:,} events in {stats.seconds:.0f}s")
    if should_stop():
        return
    complete_demo(platform)
    if not should_stop():
        print(_experiment_traffic_once(platform, url, write_key, users))
    print(next_steps(platform.settings, write_key))


def _experiment_traffic_once(platform: Any, url: str, write_key: str, users: int | None) -> str:
    """Expose the demo users to the demo experiment and send their simulated orders, once
    per data dir (``kirana.demo.experiment_traffic``); failures are reported, not raised."""
    from kirana.demo.experiment_traffic import CONVERSION, simulate_experiment_traffic
    from kirana.demo.instacart import load_histories
    from kirana.demo.showcase import EXPERIMENT_KEY

    if platform.store.get_setting(DEMO_EXPERIMENT_TRAFFIC):
        return f"experiment traffic: already sent for {EXPERIMENT_KEY}"
    histories = load_histories()[: users or None]
    try:
        with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:

            def personalise(user_id: str) -> dict[str, Any]:
                params = {"placement": "home_feed", "userId": user_id}
                answer = client.get("/v1/personalize", params=params)
                answer.raise_for_status()
                return answer.json()

            exposed, orders = simulate_experiment_traffic(
                ((str(h.user_id), h) for h in histories), personalise, EXPERIMENT_KEY
            )
        if not exposed:
            return f"experiment traffic FAILED: nobody was assigned to {EXPERIMENT_KEY}"
        post_batches(url, write_key, orders)
        platform.drain(timeout=600)
    except (httpx.HTTPError, RuntimeError) as exc:
        return f"experiment traffic FAILED: {type(exc).__name__}: {exc}"
    platform.store.set_setting(DEMO_EXPERIMENT_TRAFFIC, str(sum(exposed.values())))
    rates = ", ".join(f"{v} {p:.0%}" for v, p in CONVERSION.items())
    per_variation = ", ".join(f"{v} {n}" for v, n in sorted(exposed.items()))
    return (
        f"experiment traffic (simulated): {sum(exposed.values())} users opened the home feed "
        f"({per_variation}) and {len(orders)} ordered again, at rates built into the demo "
        f"({rates}); see `kirana experiments report {EXPERIMENT_KEY}`"
    )


def _demo_write_key(store: Any) -> str:
    """A write key for the demo source. Keys are stored only as hashes, so when the source
    exists already it gets a fresh key; the previous one keeps working for a day."""
    from datetime import timedelta

    from kirana.store.protocol import NotFound

    try:
        store.source_by_name(DEMO_SOURCE)
    except NotFound:
        return store.create_source(DEMO_SOURCE)[1]
    return store.rotate_write_key(DEMO_SOURCE, timedelta(days=1))[1]


def _define_segments(platform: Any) -> str:
    """Install the demo's computed traits and audiences and compute them once."""
    from kirana.demo.definitions import install

    install(platform.profiles)
    report = platform.refresh_segments(full=True)
    sizes = ", ".join(f"{name} {a['size']}" for name, a in report.audiences.items())
    return (
        f"computed {len(report.traits)} traits for {report.profiles_considered} profiles; "
        f"audiences: {sizes}"
    )


def with_embedded_server(data_dir: Path | None, *, users: int | None, seed: int) -> SendStats:
    """Start Kirana on a free local port, send the demo through it, wait for the lake, stop."""
    import socket

    import uvicorn

    from kirana.api.app import create_app
    from kirana.config import load_settings
    from kirana.runtime import Platform

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = load_settings(data_dir, port=port)
    platform = Platform.open(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(platform), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        from kirana.demo.showcase import complete_demo, next_steps

        write_key = _demo_write_key(platform.store)
        stats = send_demo(f"http://127.0.0.1:{port}", write_key, users=users, seed=seed)
        platform.drain(timeout=600)
        print(_define_segments(platform))
        platform.store.set_setting(DEMO_LOADED, str(stats.sent))
        complete_demo(platform)
        print("start the server with `kirana serve`, then")
        print(next_steps(load_settings(data_dir), write_key))
    finally:
        server.should_exit = True
        thread.join()
    return stats
