"""Real-time audience latency: from the acknowledgement of a qualifying event to membership.

Starts ``kirana serve`` in a subprocess, defines an event-driven audience
("at least 2 orders in 30 days"), then for each probe user sends two orders
through ``/v1/batch`` while a background load of other events runs, and polls
the profile API until the user is in the audience. Reports p50/p99/max.

    python benchmarks/realtime_audience.py --probes 50 --background-rate 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid

import httpx

from _harness import ServerUnderTest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--background-rate", type=int, default=2000, help="events/s of other load")
    args = parser.parse_args()
    server = ServerUnderTest("kirana-rt-")
    key, url = server.write_key, server.url
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    http = httpx.Client(base_url=url, timeout=30)
    http.put(
        "/v1/audiences/repeat_buyers",
        headers=admin,
        json={"conditions": {"event": "Order Completed", "at_least": 2, "within_days": 30}},
    )
    stop = threading.Event()

    def background() -> None:
        with httpx.Client(base_url=url, auth=(key, "")) as bg:
            while not stop.is_set():
                batch = [
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "userId": f"bg{i % 5000}",
                        "messageId": str(uuid.uuid4()),
                    }
                    for i in range(100)
                ]
                bg.post("/v1/batch", json={"batch": batch})
                time.sleep(100 / args.background_rate)

    loader = threading.Thread(target=background)
    loader.start()
    time.sleep(2)
    latencies = []
    for i in range(args.probes):
        user = f"probe-{i}"
        orders = [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": user,
                "messageId": f"{user}-{n}",
            }
            for n in range(2)
        ]
        response = http.post("/v1/batch", json={"batch": orders}, auth=(key, ""))
        acked = time.perf_counter()
        assert response.status_code == 200, response.text
        while True:
            body = http.get(f"/v1/profiles/{user}", headers=admin, params={"events": 0})
            if body.status_code == 200 and "repeat_buyers" in body.json()["audiences"]:
                latencies.append(time.perf_counter() - acked)
                break
            if time.perf_counter() - acked > 60:
                break
            time.sleep(0.01)
    stop.set()
    loader.join()
    server.stop()
    latencies.sort()
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "cores": os.cpu_count(),
                "background_events_per_s": args.background_rate,
                "probes": args.probes,
                "entered": len(latencies),
                "p50_ms": round(1000 * statistics.median(latencies)),
                "p99_ms": round(1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)]),
                "max_ms": round(1000 * latencies[-1]),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
