"""Personalise API latency and throughput with 1M profiles and 50k products.

Builds the stores directly (profile store, serving store, content, ranking statistics), not
through HTTP, so setup takes minutes rather than hours (about 6 for 1M profiles); starts
``kirana serve`` on that data dir in a subprocess (API and worker processes, as shipped); then
a load generator in another process sends ``GET /v1/personalize`` **open loop** at fixed rates
(request i is due at start + i/rate whatever happened before, and its latency counts from that
time, so a stall shows up as queueing instead of being hidden; a phase more than two seconds
behind stops as saturated), then a closed-loop run for the capacity and, as the baseline in
the same run, the same closed loop on ``/health`` (the framework alone). Requests: 70 % home
feed of a random user (1 in 10 an unknown visitor), 20 % a product page with the product in
view, 10 % a cart with two products.

    python benchmarks/personalize.py                      # 1M profiles; 250, 500, 1,000 req/s
    python benchmarks/personalize.py --profiles 100000 --seconds 10 --rate 200 400   # quick
    python benchmarks/personalize.py --data-dir DIR ...   # build once into DIR, then reuse it
    python benchmarks/personalize.py --json results.json
    python benchmarks/personalize.py --api-processes 2 ...   # personalise on two cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _harness import KIRANA, free_port
from kirana.automation.stats import FeedbackStats, StatsKey
from kirana.config import load_settings
from kirana.serving.content_store import ContentStore, content_path
from kirana.serving.feedback_store import FeedbackStore, feedback_path
from kirana.serving.store import ServingStore, serving_path

DEPARTMENTS = ["produce", "dairy eggs", "bakery", "snacks", "beverages", "frozen", "pantry"]
AUDIENCES = ["loyal", "lapsed", "big_spenders", "produce_lovers", "new_parents"]
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- building the stores ------------------------------------------------------------------


def build_profiles(path: Path, n: int, rng: random.Random) -> None:
    """n profiles: a user id each, a favourite department, 0-2 audiences."""
    from kirana.identity.sqlite_store import SQLiteProfileStore

    SQLiteProfileStore(path).close()  # the schema
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = "2026-11-30T00:00:00+00:00"
    step = 100_000
    for start in range(0, n, step):
        ids = range(start, min(n, start + step))
        db.executemany(
            "INSERT INTO identities VALUES ('user_id', ?, ?)", ((f"u{i}", f"p{i}") for i in ids)
        )
        db.executemany(
            "INSERT INTO computed_trait_values VALUES (?, 'favourite_department', ?, ?)",
            ((f"p{i}", json.dumps(rng.choice(DEPARTMENTS)), now) for i in ids),
        )
        db.executemany(
            "INSERT OR IGNORE INTO audience_memberships VALUES (?, ?, ?)",
            (
                (a, f"p{i}", now)
                for i in ids
                for a in rng.sample(AUDIENCES, rng.choice((0, 1, 1, 2)))
            ),
        )
        db.commit()
    db.close()


def build_recommendations(path: Path, profiles: int, products: int, rng: random.Random) -> None:
    store = ServingStore(path)
    pids = [f"sku{i}" for i in range(products)]

    def lists(n_users: int, k: int):
        for i in range(n_users):
            yield f"u{i}", [(p, round(1 - j / k, 3)) for j, p in enumerate(rng.sample(pids, k))]

    store.replace_recommendations("recommended_for_you", lists(profiles, 12), version="bench")
    store.replace_recommendations("buy_again", lists(profiles * 3 // 4, 8), version="bench")
    store.replace_recommendations(
        "frequently_bought_together",
        ((p, [(q, 0.5) for q in rng.sample(pids, 10)]) for p in pids),
        version="bench",
    )
    store.replace_recommendations("popular", [("*", [(p, 1.0) for p in pids[:50]])], version="b")
    store.close()


def item(key: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "title": key.replace("-", " ").title(),
        "template": "card",
        "payload": {"image": f"{key}.jpg", "cta": "Shop now"},
        "tags": [f"department:{rng.choice(DEPARTMENTS)}"],
        **extra,
    }


def build_content(store: ContentStore, rng: random.Random) -> list[str]:
    """Three placements, eight widgets, 27 content items (some targeted, one widget capped)."""
    bundle = {
        "widgets": [
            {"key": "again", "kind": "buy_again", "title": "Buy it again", "max_items": 8},
            {"key": "for-you", "kind": "recommended_for_you", "max_items": 12},
            {"key": "fbt", "kind": "frequently_bought_together", "max_items": 6},
            {"key": "popular", "kind": "popular", "max_items": 10},
            {
                "key": "hero",
                "kind": "banner",
                "max_items": 1,
                "items": [item(f"hero-{i}", rng) for i in range(8)]
                + [item("hero-parents", rng, audiences=["new_parents"])],
            },
            {
                "key": "offers",
                "kind": "offer",
                "max_items": 3,
                "frequency_cap": {"max_impressions": 5, "hours": 24},
                "items": [item(f"offer-{i}", rng) for i in range(6)],
            },
            {
                "key": "collections",
                "kind": "collection",
                "max_items": 4,
                "items": [item(f"collection-{i}", rng) for i in range(8)],
            },
            {
                "key": "seasonal",
                "kind": "banner",
                "items": [item(f"season-{i}", rng) for i in range(4)],
            },
        ],
        "placements": [
            {
                "key": "home_feed",
                "max_widgets": 5,
                "widgets": [
                    {"widget": "again", "pinned_slot": 0},
                    "hero",
                    "for-you",
                    "offers",
                    "collections",
                    "seasonal",
                    "popular",
                ],
            },
            {"key": "product_page", "max_widgets": 3, "widgets": ["fbt", "for-you", "offers"]},
            {"key": "cart", "max_widgets": 3, "widgets": ["fbt", "offers", "popular"]},
        ],
    }
    store.import_bundle(bundle)
    arms = []
    for placement in store.placements():
        for slot in placement.slots:
            arms.append((placement.key, slot.widget))
            arms += [(placement.key, f"{slot.widget}/{i.key}") for i in store.items(slot.widget)]
    return [f"{p}|{a}" for p, a in arms]


def build_stats(store: FeedbackStore, arms: list[str], rng: random.Random) -> None:
    """Learnt statistics for every arm in every audience (past burn-in), as after a week."""
    stats = FeedbackStats(7 * 86400)
    t = time.time() - 3600
    keys = []
    for entry in arms:
        placement, arm = entry.split("|")
        ctr = rng.uniform(0.01, 0.08)
        for segment in [*AUDIENCES, "all"]:
            shown = rng.randint(300, 3000)
            key = StatsKey(placement, arm, segment)
            stats.observe_impression(key, t, epoch=(1, 0.0), weight=shown)
            stats.observe_click(key, t, epoch=(1, 0.0), weight=round(shown * ctr))
            keys.append(key)
    with store.transaction() as rev:
        store.save_cells(stats, keys, rev)


def build(data: Path, profiles: int, products: int, seed: int = 7) -> dict[str, float]:
    rng = random.Random(seed)
    settings = load_settings(data)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    build_profiles(settings.state_dir / "profiles.sqlite", profiles, rng)
    timings["profiles_s"] = round(time.perf_counter() - t, 1)
    log(f"profiles: {profiles:,} in {timings['profiles_s']} s")
    t = time.perf_counter()
    build_recommendations(serving_path(settings.state_dir), profiles, products, rng)
    timings["recommendations_s"] = round(time.perf_counter() - t, 1)
    log(f"recommendation lists in {timings['recommendations_s']} s")
    t = time.perf_counter()
    content = ContentStore(content_path(settings.state_dir))
    arms = build_content(content, rng)
    content.close()
    feedback = FeedbackStore(feedback_path(settings.state_dir))
    build_stats(feedback, arms, rng)
    feedback.close()
    timings["content_and_stats_s"] = round(time.perf_counter() - t, 1)
    return timings


# -- the load generator (another process) -----------------------------------------------------


def request_bytes(port: int, write_key: str, profiles: int, products: int, n: int) -> list[bytes]:
    rng = random.Random(11)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.7:
            who = (
                f"userId=u{rng.randrange(profiles)}"
                if rng.random() < 0.9
                else f"anonymousId=visitor-{rng.randrange(10**9)}"
            )
            query = f"placement=home_feed&{who}"
        elif roll < 0.9:
            query = f"placement=product_page&userId=u{rng.randrange(profiles)}"
            query += f"&itemId=sku{rng.randrange(products)}"
        else:
            query = f"placement=cart&userId=u{rng.randrange(profiles)}"
            query += f"&itemId=sku{rng.randrange(products)}&itemId=sku{rng.randrange(products)}"
        out.append(
            f"GET /v1/personalize?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"X-Write-Key: {write_key}\r\n\r\n".encode()
        )
    return out


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, data: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return int(head[9:12])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def summary(latencies: list[float], statuses: dict[int, int], seconds: float) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "seconds": round(seconds, 2),
        "throughput_rps": round(statuses.get(200, 0) / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(latencies, 0.50),
        "p90_ms": pct(latencies, 0.90),
        "p99_ms": pct(latencies, 0.99),
        "p999_ms": pct(latencies, 0.999),
        "max_ms": pct(latencies, 1.0),
    }


async def open_loop(port: int, requests: list[bytes], rate: float, conns: int) -> dict[str, Any]:
    pool = [Conn(port) for _ in range(conns)]
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter() + 0.05

    async def worker(conn: Conn) -> None:
        while (job := await queue.get()) is not None:
            data, due = job
            status = await conn.exchange(data)
            latencies.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1

    tasks = [asyncio.ensure_future(worker(c)) for c in pool]
    unsent = 0
    for i, data in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if queue.qsize() > 2 * rate:  # two seconds behind: saturated, stop offering more
            unsent = len(requests) - i
            break
        queue.put_nowait((data, due))
    for _ in pool:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    out = summary(latencies, statuses, time.perf_counter() - start)
    out["offered_rps"] = rate
    out["saturated_unsent"] = unsent
    return out


async def closed_loop(port: int, requests: list[bytes], conns: int, seconds: float) -> dict:
    pool = [Conn(port) for _ in range(conns)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    position = {"next": 0}
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < deadline and position["next"] < len(requests):
            data = requests[position["next"]]
            position["next"] += 1
            t = time.perf_counter()
            status = await conn.exchange(data)
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in pool))
    return summary(latencies, statuses, time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot: ``/proc/stat``'s user, nice, system,
    irq and softirq (not idle, iowait, or time the hypervisor stole)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:7]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def generator(cfg: dict[str, Any]) -> dict[str, Any]:
    """Runs in its own process: warm-up, open loop at the target rate, then closed loop."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    port, seconds, rates = cfg["port"], cfg["seconds"], cfg["rates"]
    n = int(max(rates) * (seconds + cfg["warmup"])) + 20_000
    reqs = request_bytes(port, cfg["write_key"], cfg["profiles"], cfg["products"], n)
    warm = int(min(rates) * cfg["warmup"])
    asyncio.run(open_loop(port, reqs[:warm], min(rates), cfg["connections"]))
    phases = []
    for rate in rates:  # open loop, lowest rate first
        batch = reqs[warm : warm + int(rate * seconds)]
        pids = cfg["api_pids"]
        cpu0, t0 = sum(map(cpu_seconds, pids)), time.perf_counter()
        own0, machine0 = time.process_time(), machine_busy()
        measured = asyncio.run(open_loop(port, batch, rate, cfg["connections"]))
        wall = time.perf_counter() - t0
        cpu = sum(map(cpu_seconds, pids)) - cpu0
        measured["server_api_cpu_util"] = round(cpu / wall, 2)
        # the rest of the 2-core budget: this load generator, and everything on the machine
        measured["generator_cpu_util"] = round((time.process_time() - own0) / wall, 2)
        measured["machine_cpu_util"] = round((machine_busy() - machine0) / wall, 2)
        measured["server_api_cpu_ms_per_request"] = round(
            cpu / max(measured["requests"], 1) * 1e3, 3
        )
        phases.append(measured)
        print(json.dumps(measured), file=sys.stderr, flush=True)
        if measured["saturated_unsent"]:
            break
    capacity = asyncio.run(closed_loop(port, reqs[warm:], cfg["closed_connections"], 10))
    health = f"GET /health HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    baseline = asyncio.run(closed_loop(port, [health] * 200_000, cfg["closed_connections"], 5))
    capacity["ratio_to_health_endpoint"] = round(
        capacity["throughput_rps"] / max(baseline["throughput_rps"], 1e-9), 3
    )
    return {"open_loop": phases, "closed_loop": capacity, "closed_loop_health": baseline}


# -- orchestration ------------------------------------------------------------------------------


def handler_cpu(data: Path, profiles: int, products: int, n: int = 500) -> dict[str, float]:
    """CPU per call of the personalise service itself, in this process (no HTTP): the best
    of three rounds, so other processes on a shared machine inflate it least."""
    from kirana.runtime import open_profile_store
    from kirana.serving.extension import build as build_service
    from kirana.serving.personalize import PersonalizeRequest

    settings = load_settings(data)
    p = build_service(settings, open_profile_store(settings))
    rng = random.Random(5)
    reqs = [
        PersonalizeRequest("home_feed", f"u{rng.randrange(profiles)}")
        if rng.random() < 0.7
        else PersonalizeRequest(
            "product_page",
            f"u{rng.randrange(profiles)}",
            item_ids=(f"sku{rng.randrange(products)}",),
        )
        for _ in range(4 * n)
    ]
    for r in reqs[:n]:  # warm the caches
        p.service.personalize(r)
    rounds = []
    for k in range(1, 4):
        t = time.process_time()
        for r in reqs[k * n : (k + 1) * n]:
            p.service.personalize(r)
        rounds.append((time.process_time() - t) / n * 1000)
    p.close()
    return {"best_ms": round(min(rounds), 3), "median_ms": round(sorted(rounds)[1], 3)}


def cli(data: Path, *args: str) -> str:
    return subprocess.run(
        [*KIRANA, *args, "--data-dir", str(data)], check=True, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[250, 500, 1000],
        help="offered requests/s, open loop, one phase each (stops after a saturated one)",
    )
    parser.add_argument("--seconds", type=float, default=20, help="per open-loop phase")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--closed-connections", type=int, default=16)
    parser.add_argument("--api-processes", type=int, default=1, help="kirana serve --api-processes")
    parser.add_argument("--data-dir", type=Path, help="reuse a data dir built before (skip setup)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--generator", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generator:  # the load generator's own process
        print(json.dumps(generator(json.loads(args.generator))))
        return 0

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "profiles": args.profiles,
        "products": args.products,
    }
    data = args.data_dir
    if data is None or not (data / "state" / "content.sqlite").exists():
        data = data or Path(tempfile.mkdtemp(prefix="kirana-personalize-"))
        t = time.perf_counter()
        results["setup"] = build(data, args.profiles, args.products)
        results["setup"]["total_s"] = round(time.perf_counter() - t, 1)
        log(f"setup: {results['setup']}")
    results["handler_cpu_per_request"] = handler_cpu(data, args.profiles, args.products)
    log(f"personalise service CPU per request: {results['handler_cpu_per_request']}")
    write_key = cli(data, "sources", "create", f"bench-{int(time.time())}")
    admin = cli(data, "tokens", "create", f"bench-{int(time.time())}", "--role", "viewer")
    port = free_port()
    server = subprocess.Popen(
        [
            *(*KIRANA, "serve", "--port", str(port), "--data-dir", str(data)),
            *("--log-level", "warning", "--api-processes", str(args.api_processes)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://{HOST}:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        probe = httpx.get(
            f"http://{HOST}:{port}/v1/personalize",
            params={"placement": "home_feed", "userId": "u1"},
            headers={"X-Write-Key": write_key},
            timeout=30,
        )
        probe.raise_for_status()
        results["response_bytes_home_feed"] = len(probe.content)
        for _ in range(600):  # every API process up (the extra ones start after the first)
            status = httpx.get(
                f"http://{HOST}:{port}/v1/status",
                headers={"Authorization": f"Bearer {admin.split()[-1]}"},
                timeout=30,
            ).json()
            api_pids = [p["pid"] for p in status["api_processes"] if p["alive"]]
            if len(api_pids) == args.api_processes:
                break
            time.sleep(0.1)
        results["api_processes"] = args.api_processes
        cfg = {
            "port": port,
            "write_key": write_key,
            "api_pids": api_pids,
            "profiles": args.profiles,
            "products": args.products,
            "rates": sorted(args.rate),
            "seconds": args.seconds,
            "warmup": args.warmup,
            "connections": args.connections,
            "closed_connections": args.closed_connections,
        }
        log(f"load: open loop at {args.rate} req/s, {args.seconds:.0f} s each, then closed loop")
        out = subprocess.run(
            [sys.executable, __file__, "--generator", json.dumps(cfg)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        results.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    results["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
