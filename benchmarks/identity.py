"""Identity resolution throughput and memory, and how they grow with size.

Generates a synthetic population (each person: one user id, 1-3 devices with
anonymous ids, an email, a few anonymous sessions before logging in) and feeds
their events through :class:`kirana.identity.engine.IdentityResolver` on a
profile store, in batches as the profile consumer does. Reports events/s,
identities/s and peak RSS per size, so cost growth reads as a ratio.

    python benchmarks/identity.py --identities 100000 1000000
    python benchmarks/identity.py --identities 1000000 --backend postgres
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _harness import run_each_size
from kirana.identity.engine import IdentityResolver
from kirana.identity.sqlite_store import SQLiteProfileStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def population_events(identities: int, seed: int = 7):
    """Yield canonical events until about ``identities`` identifiers exist."""
    rng = random.Random(seed)
    made = 0
    person = 0
    n = 0
    while made < identities:
        user = f"user-{person}"
        email = f"person{person}@example.com"
        devices = [f"anon-{person}-{d}" for d in range(rng.randint(1, 3))]
        made += 2 + len(devices)
        for anon in devices:
            for _ in range(rng.randint(1, 4)):  # anonymous browsing
                n += 1
                yield {
                    "type": "track",
                    "event": "Product Viewed",
                    "anonymousId": anon,
                    "messageId": f"m{n}",
                    "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
                }
            n += 1
            yield {
                "type": "identify",
                "userId": user,
                "anonymousId": anon,
                "messageId": f"m{n}",
                "traits": {"email": email, "plan": rng.choice(["free", "gold"])},
                "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
            }
            for _ in range(rng.randint(1, 4)):  # logged-in activity
                n += 1
                yield {
                    "type": "track",
                    "event": "Product Added",
                    "userId": user,
                    "anonymousId": anon,
                    "messageId": f"m{n}",
                    "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
                }
        person += 1


def cpu_seconds() -> float:
    """This process's CPU time: unlike wall time, it holds on a shared or paused machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(identities: int, backend: str, batch: int = 5000) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="kirana-idbench-"))
    if backend == "postgres":
        from kirana.identity.postgres_store import PostgresProfileStore

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        store = PostgresProfileStore("host=127.0.0.1 user=postgres dbname=test", schema=schema)
    else:
        store = SQLiteProfileStore(tmp / "profiles.sqlite")
    resolver = IdentityResolver(store)
    events = 0
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    pending = []
    for event in population_events(identities):
        pending.append(event)
        if len(pending) == batch:
            with store.transaction():
                for e in pending:
                    resolver.apply_event(e)
            events += len(pending)
            pending = []
            if events % 1_000_000 < batch:  # a long run shows it is alive, and how fast
                print(
                    f"  {events:,} events · {time.perf_counter() - started:,.0f} s wall · "
                    f"{cpu_seconds() - cpu_started:,.0f} s CPU · {rss_mb():,.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    with store.transaction():
        for e in pending:
            resolver.apply_event(e)
    events += len(pending)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    size = sum(p.stat().st_size for p in tmp.glob("*")) if backend == "sqlite" else None
    store.close()
    if backend == "postgres":
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return {
        "backend": backend,
        "identities": identities,
        "events": events,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "events_per_cpu_s": round(events / cpu),
        "events_per_s": round(events / seconds),
        "identities_per_s": round(identities / seconds),
        "recomputations": resolver.recomputations,
        "peak_rss_mb": round(rss_mb()),
        "store_mb": round(size / 2**20) if size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:  # one size per process, so peak RSS belongs to that size alone
        print(json.dumps(run(args.identities[0], args.backend)))
        return
    print(f"# {time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores · backend {args.backend}")
    results = run_each_size(__file__, "--identities", args.identities, ["--backend", args.backend])
    base = results[0]
    for r in results[1:]:
        growth = r["identities"] / base["identities"]
        cost = r["seconds"] / base["seconds"]
        print(
            f"{growth:.0f}x identities -> {cost:.1f}x time "
            f"({r['events_per_s'] / base['events_per_s']:.2f}x events/s)"
        )


if __name__ == "__main__":
    main()
