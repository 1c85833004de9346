"""How fast the event log's consumers catch up: events/s for each one alone and all together.

The ingest benchmark's sustained phase shows the worker process falling behind the API
when every consumer runs; this one says which consumer costs what, without HTTP. It
appends ``--events`` records (the ingest benchmark's event shape, 50k users, 5k products)
to a fresh log with no consumer running, then opens the platform as ``kirana serve``'s
worker does (``role="all"``, every extension attached) and starts either one consumer or
all of them, timing CPU and wall clock until they have caught up with the log. Each
measurement runs in its own process on its own copy of the log, so caches and page
cache state do not carry over.

    python benchmarks/consumers.py --events 500000 --repeat 3
    python benchmarks/consumers.py --events 200000 --only profiles
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (Linux ``/proc``)."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(data_dir: Path, events: int) -> None:
    """A data dir with one source and ``events`` records in its log, no consumer positions."""
    from ingest import Bodies, _pipeline
    from kirana.config import load_settings
    from kirana.runtime import open_log, open_store

    settings = load_settings(data_dir)
    store = open_store(settings)
    source, _ = store.create_source("bench")
    store.close()
    log = open_log(settings)
    bodies = Bodies("consumers")
    received = datetime.now(UTC)
    done = 0
    while done < events:
        size = min(100, events - done)
        for body in bodies.batch_bodies(1, size):
            log.append_sync(_pipeline(body, received, source.id))
        done += size
    log.close()


def catch_up(data_dir: Path, only: str | None) -> dict:
    """Start the named consumer (or all) and time it until it reaches the log's end."""
    from kirana.config import load_settings
    from kirana.runtime import Platform

    if os.environ.get("SWITCH"):
        sys.setswitchinterval(float(os.environ["SWITCH"]))
    settings = load_settings(data_dir, worker_process=False)
    platform = Platform.open(settings, role="all")
    names = sorted(platform.consumers)
    if only not in (None, "all"):
        if only not in platform.consumers:
            raise SystemExit(f"unknown consumer {only!r}; have {names}")
        for name in names:
            if name != only:
                del platform.consumers[name]
    end = platform.log.end_offset
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for thread in platform.consumers.values():
        thread.start()
    caught_up = platform.drain(timeout=3600)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    threads = {n: round(thread_cpu(t._thread.native_id), 2) for n, t in platform.consumers.items()}
    errors = {n: t.last_error for n, t in platform.consumers.items() if t.errors}
    platform.close()
    return {
        "consumers": only or "all",
        "caught_up": caught_up,
        "log_bytes": end,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "errors": errors,
        "thread_cpu_s": threads,
        "all_consumers": names,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--only", help="measure this consumer alone, or 'all' together (default: each, then all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement; the fastest is reported"
    )
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.data_dir is not None:
        print(json.dumps(catch_up(args.data_dir, args.only)))
        return

    work = Path(tempfile.mkdtemp(prefix="kirana-consumers-"))
    template = work / "template"
    started = time.perf_counter()
    fill(template, args.events)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} cores · {args.events:,} events "
        f"appended in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    def measure(only: str | None) -> dict:
        """The fastest of ``--repeat`` runs: this machine's neighbours only ever slow it down."""
        runs = []
        for _ in range(args.repeat):
            copy = work / f"run-{only or 'all'}"
            shutil.copytree(template, copy)
            cmd = [sys.executable, __file__, "--data-dir", str(copy), "--events", str(args.events)]
            if only:
                cmd += ["--only", only]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            shutil.rmtree(copy)
            runs.append(json.loads(out.strip().splitlines()[-1]))
        return min(runs, key=lambda r: r["cpu_s"])

    first = measure(args.only)
    rows = [first]
    if args.only is None:
        rows = [measure(name) for name in first["all_consumers"]] + [first]
    print("| consumers | events/s (CPU) | events/s (wall) | CPU µs/event | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        flag = "" if r["caught_up"] and not r["errors"] else f" ⚠ {r['errors'] or 'not caught up'}"
        print(
            f"| {r['consumers']}{flag} | {args.events / r['cpu_s']:,.0f} | "
            f"{args.events / r['wall_s']:,.0f} | {r['cpu_s'] / args.events * 1e6:,.1f} | "
            f"{r['peak_rss_mb']} MB |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
