"""How long from acknowledgement until an event is queryable in the lake.

Starts ``kirana serve`` in a subprocess, sends 100-event batches at a steady
rate from this process, and for one probe event per second polls the lake
(DuckDB over the Delta table, as ``kirana sql`` does) until it is visible.
Target (issue 2): queryable within 10 s of acknowledgement under normal load.

    python benchmarks/lake_freshness.py --rate 2000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import threading
import time
import uuid

import httpx

from _harness import ServerUnderTest
from kirana.lake.catalog import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2000, help="events per second offered")
    parser.add_argument("--seconds", type=int, default=30, help="how long to send")
    args = parser.parse_args()

    server = ServerUnderTest("kirana-fresh-")
    data, key, url = server.data, server.write_key, server.url

    probes: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
    stop = threading.Event()

    def send() -> None:
        interval = 100 / args.rate
        next_at = time.perf_counter()
        last_probe = 0.0
        with httpx.Client(base_url=url, auth=(key, "")) as http:
            while not stop.is_set():
                batch = [
                    {
                        "type": "track",
                        "event": "Load",
                        "userId": f"u{i}",
                        "messageId": str(uuid.uuid4()),
                    }
                    for i in range(100)
                ]
                probe = time.perf_counter() - last_probe >= 1.0
                response = http.post("/v1/batch", json={"batch": batch})
                if response.status_code == 200 and probe:
                    probes.put((batch[-1]["messageId"], time.perf_counter()))
                    last_probe = time.perf_counter()
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))

    sender = threading.Thread(target=send)
    sender.start()
    latencies: list[float] = []
    pending: dict[str, float] = {}
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline or pending:
        while not probes.empty():
            message_id, acked_at = probes.get()
            pending[message_id] = acked_at
        if time.perf_counter() >= deadline:
            stop.set()
        visible = set()
        if pending:
            ids = ",".join(f"'{m}'" for m in pending)
            conn = connect(data / "lake")
            visible = {
                r[0]
                for r in conn.sql(
                    f"SELECT message_id FROM events WHERE message_id IN ({ids})"
                ).fetchall()
            }
        now = time.perf_counter()
        latencies.extend(now - pending.pop(m) for m in visible)
        time.sleep(0.1)
        if time.perf_counter() > deadline + 60:
            break
    stop.set()
    sender.join()
    server.stop()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "rate_events_per_s": args.rate,
        "probes": len(latencies),
        "unseen_probes": len(pending),
        "freshness_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "freshness_max_s": round(max(latencies), 2) if latencies else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
