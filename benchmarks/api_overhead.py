"""What the HTTP framework costs per call, hot path against FastAPI's router, in-process.

Calls the ASGI app directly (no sockets, no uvicorn), so only routing, parameter handling,
middleware and the handler count. Each endpoint is asked twice in the same process: as
served (``HotPaths`` dispatches it) and under a ``root_path`` (the middleware steps aside
and FastAPI's router and parameter solving serve the same handler). The calls chosen do
no real work (a 401 for a missing write key, ``/health``), so the difference is the
framework. Prints CPU µs per call and the ratio.

    python benchmarks/api_overhead.py --calls 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from kirana.api.app import create_app
from kirana.config import load_settings
from kirana.runtime import Platform

CASES = [
    ("GET", "/health", ""),
    ("GET", "/v1/personalize", "placement=home&userId=u1"),
    ("POST", "/v1/track", ""),
]


async def call(app, method: str, path: str, query: str, root_path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "query_string": query.encode(),
        "root_path": root_path,
        "headers": [(b"host", b"x")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    status = 0

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(app, calls: int) -> list[tuple[str, int, float, float]]:
    rows = []
    for method, path, query in CASES:
        cpu = {}
        for label, root in (("hot", ""), ("routed", "/mounted")):
            for _ in range(200):  # warm
                status = await call(app, method, path, query, root)
            best = float("inf")
            for _ in range(3):  # best of three: neighbours only ever slow it down
                t = time.process_time()
                for _ in range(calls):
                    await call(app, method, path, query, root)
                best = min(best, (time.process_time() - t) / calls * 1e6)
            cpu[label] = best
        rows.append((f"{method} {path}", status, cpu["hot"], cpu["routed"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per measurement")
    args = parser.parse_args()
    platform = Platform.open(load_settings(Path(tempfile.mkdtemp())), role="api")
    try:
        rows = asyncio.run(measure(create_app(platform, manage_lifecycle=False), args.calls))
    finally:
        platform.close()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} cores · in-process ASGI calls")
    print("| call | status | hot path µs CPU | FastAPI router µs CPU | router ÷ hot |")
    print("|---|---:|---:|---:|---:|")
    for name, status, hot, routed in rows:
        print(f"| {name} | {status} | {hot:.0f} | {routed:.0f} | {routed / hot:.1f}x |")


if __name__ == "__main__":
    main()
