"""Ingest throughput, latency and memory of the tracking API, against this machine's raw limit.

One run measures, in order:

1. Baselines, in this process, with no HTTP: the collector's own pure path
   (``batch_decoder`` -> ``event_decoder`` -> ``normalize`` -> ``event_record``)
   on the very bodies the HTTP phases send, with and without the durable
   append to a ``FileEventLog`` (fsync'd group commit, 100-event appends from
   concurrent asyncio tasks); the bare fsync'd append of pre-encoded records;
   and one ``write`` + ``fdatasync`` on this disk.
2. ``kirana serve`` in a subprocess (fresh temp data dir, free port, loopback),
   driven by a load generator in another subprocess (this script with
   ``--generator``): asyncio on uvloop writing pre-built HTTP/1.1 requests on
   keep-alive connections and parsing only the status line, Content-Length and
   the JSON ack. Phases: (a) ``/v1/batch`` closed-loop max throughput at
   several connection counts; (b) ``/v1/batch`` open-loop at a fixed offered
   rate (latency measured from each request's *scheduled* send time, so queueing
   is not hidden by coordinated omission) for ``--duration`` seconds, the
   sustained phase; (c) single-event ``/v1/track`` closed-loop max throughput.
   Nothing is retried: 429s, other statuses and transport errors are counted.
3. The server's RSS (``/proc/<pid>/status`` VmRSS), CPU and consumer lag
   (``GET /v1/status``) every second; start/end/max per phase.
4. The ratio of the best HTTP throughput to the in-process baseline.

Prints a markdown table and writes JSON to ``benchmarks/results/ingest-<timestamp>.json``.

    python benchmarks/ingest.py                 # about 2-3 minutes
    python benchmarks/ingest.py --soak 300      # 5-minute sustained phase (memory)
    python benchmarks/ingest.py --consumers none   # diagnostic: server without its consumers
    python benchmarks/ingest.py --log nats      # the event log on a private JetStream server
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import gc
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

HOST = "127.0.0.1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# --------------------------------------------------------------------------------------
# Request bodies (shared by the baseline and the generator)
# --------------------------------------------------------------------------------------

_EVENT_NAMES = (b"Product Viewed", b"Product Added", b"Checkout Started", b"Order Completed")
_EVENT = (
    b'{"type":"track","event":"%s","userId":"user-%d","messageId":"%s-%d",'
    b'"timestamp":"%s","properties":{"product_id":"p-%d","price":%d.%02d,"quantity":%d,'
    b'"currency":"INR"},"context":{"library":{"name":"analytics-python","version":"2.3.2"},'
    b'"ip":"10.0.%d.%d"}}'
)


def _now_iso() -> bytes:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


class Bodies:
    """Builds events whose messageIds are unique across the whole run (prefix + counter)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()
        self.counter = 0

    def events(self, n: int) -> list[bytes]:
        ts = _now_iso()
        start, self.counter = self.counter, self.counter + n
        p = self.prefix
        return [
            _EVENT
            % (
                _EVENT_NAMES[i & 3],
                (i * 7919) % 50_000,
                p,
                i,
                ts,
                i % 4999,
                i % 300,
                i % 100,
                1 + i % 5,
                (i >> 8) & 255,
                i & 255,
            )
            for i in range(start, start + n)
        ]

    def batch_bodies(self, batches: int, size: int) -> list[bytes]:
        sent_at = _now_iso()
        out = []
        for _ in range(batches):
            out.append(
                b'{"batch":[' + b",".join(self.events(size)) + b'],"sentAt":"' + sent_at + b'"}'
            )
        return out


def http_request(path: str, port: int, write_key: str, body: bytes) -> bytes:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Basic {auth}\r\n"
        f"User-Agent: kirana-bench/1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def pct(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    values = sorted(seconds)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {
        "n": len(values),
        "p50_ms": ms(pct(values, 50)),
        "p90_ms": ms(pct(values, 90)),
        "p99_ms": ms(pct(values, 99)),
        "p999_ms": ms(pct(values, 99.9)),
        "max_ms": ms(values[-1] if values else None),
    }


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``kirana serve`` runs its consumers in a child process)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its children (all threads) from /proc/<pid>/stat."""
    total = None
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK  # stat(5) 14, 15
    return total


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of a process: {tid: (name, seconds)}."""
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def thread_breakdown(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float
) -> dict[str, float]:
    """Per-thread-name CPU utilisation over an interval; the main thread runs the event loop."""
    totals: Counter = Counter()
    for tid, (name, cpu) in after.items():
        label = "main (event loop)" if tid == pid else name
        totals[label] += cpu - before.get(tid, (name, 0.0))[1]
    return {k: round(v / wall, 3) for k, v in totals.most_common() if v / wall >= 0.005}


def proc_rss_kb(pid: int) -> int | None:
    """Resident memory of a process and its children (the API and its consumer worker)."""
    total = None
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (total or 0) + int(line.split()[1])
    return total


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq
    return busy / CLK_TCK, steal / CLK_TCK, (busy + idle + iowait + steal) / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when available (the server uses it too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# 1. Baselines: the same bytes with no HTTP
# --------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
        nproc_value: int | str = int(nproc.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        nproc_value = len(os.sched_getaffinity(0))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": nproc_value,
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "msgspec": msgspec.__version__,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        **git_revision(),
    }


def git_revision() -> dict[str, Any]:
    """The commit measured, and whether src/ differed from it (read-only git commands)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return {}
    return {"git_commit": head or None, "src_uncommitted_changes": bool(dirty)}


def fsync_latency(directory: Path, rounds: int = 200) -> dict[str, Any]:
    """One 4 KiB append + fdatasync, repeated: the floor under every acknowledgement."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 4096
    samples = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return latency_summary(samples)


def _pipeline(body: bytes, received_at: datetime, source_id: str) -> list[bytes]:
    """Exactly what Collector._ingest_batch does per request, minus HTTP and auth."""
    from kirana.collect.normalize import BatchDefaults, normalize
    from kirana.collect.schema import batch_decoder, event_decoder
    from kirana.eventlog.records import event_record

    batch = batch_decoder.decode(body)
    defaults = BatchDefaults(batch.sentAt, batch.context, batch.integrations)
    return [
        event_record(
            normalize(
                event_decoder.decode(raw),
                received_at=received_at,
                source_id=source_id,
                defaults=defaults,
            )
        )
        for raw in batch.batch
    ]


def run_baselines(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from kirana.eventlog.segments import FileEventLog

    source_id = "src_baseline"
    pool = Bodies(f"base-{uuid.uuid4().hex[:8]}").batch_bodies(1000, args.batch_size)
    seconds = args.baseline_seconds
    results: dict[str, Any] = {
        "pool_batches": len(pool),
        "note": "bodies are cycled from a pool; the log does not deduplicate",
    }

    # (i) CPU only: decode + normalize + encode, no log.
    log("baseline: decode + normalize + encode (no log)")
    events = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds
    i = 0
    while time.perf_counter() < deadline:
        events += len(_pipeline(pool[i % len(pool)], datetime.now(UTC), source_id))
        i += 1
    wall = time.perf_counter() - t0
    results["cpu_only"] = {
        "events": events,
        "seconds": round(wall, 2),
        "events_per_s": round(events / wall),
        "us_per_event": round(wall / events * 1e6, 2),
        "cpu_util": round((time.process_time() - cpu0) / wall, 2),
    }

    # (ii) The same plus the fsync'd group-commit append, from concurrent asyncio tasks.
    async def full(event_log: FileEventLog) -> dict[str, Any]:
        counter = {"next": 0, "events": 0, "appends": 0}
        latencies: list[float] = []
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                body = pool[counter["next"] % len(pool)]
                counter["next"] += 1
                t = time.perf_counter()
                payloads = _pipeline(body, datetime.now(UTC), source_id)
                await event_log.append(payloads)
                latencies.append(time.perf_counter() - t)
                counter["events"] += len(payloads)
                counter["appends"] += 1

        cpu_start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(args.baseline_concurrency)))
        elapsed = time.perf_counter() - start
        return {
            "events": counter["events"],
            "seconds": round(elapsed, 2),
            "events_per_s": round(counter["events"] / elapsed),
            "concurrency": args.baseline_concurrency,
            "cpu_util": round((time.process_time() - cpu_start) / elapsed, 2),
            "append_latency": latency_summary(latencies),
        }

    log("baseline: decode + normalize + encode + fsync'd FileEventLog append")
    with FileEventLog(workdir / "baseline-full") as event_log:
        results["full_pipeline"] = run_async(full(event_log))

    # (iii) The bare fsync'd append of pre-encoded records.
    encoded = [_pipeline(b, datetime.now(UTC), source_id) for b in pool]

    async def bare(event_log: FileEventLog) -> dict[str, Any]:
        counter = {"next": 0, "events": 0}
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                payloads = encoded[counter["next"] % len(encoded)]
                counter["next"] += 1
                await event_log.append(payloads)
                counter["events"] += len(payloads)

        cpu_start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(args.baseline_concurrency)))
        elapsed = time.perf_counter() - start
        return {
            "events": counter["events"],
            "seconds": round(elapsed, 2),
            "events_per_s": round(counter["events"] / elapsed),
            "mb_per_s": round(counter["events"] * len(encoded[0][0]) / elapsed / 1e6, 1),
            "cpu_util": round((time.process_time() - cpu_start) / elapsed, 2),
        }

    log("baseline: bare fsync'd append of pre-encoded records")
    with FileEventLog(workdir / "baseline-bare") as event_log:
        results["bare_append"] = run_async(bare(event_log))
    results["record_bytes"] = len(encoded[0][0])
    results["request_body_bytes"] = len(pool[0])
    results["fsync_4k"] = fsync_latency(workdir)
    shutil.rmtree(workdir / "baseline-full", ignore_errors=True)
    shutil.rmtree(workdir / "baseline-bare", ignore_errors=True)
    return results


# --------------------------------------------------------------------------------------
# 2. The load generator (runs in its own process: this script with --generator)
# --------------------------------------------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CONN_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
_ack_decoder = msgspec.json.Decoder()


class Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > 1 << 18:
            await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = _CONTENT_LENGTH.search(head)
        if match is None:
            self.close()
            raise ValueError("response without Content-Length")
        body = await self.reader.readexactly(int(match.group(1))) if match.group(1) != b"0" else b""
        if _CONN_CLOSE.search(head):
            self.close()
        return status, body


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    requests: int = 0
    accepted: int = 0
    offered_events: int = 0
    rejected_events: int = 0
    reconnects: int = 0
    samples_429: list[str] = field(default_factory=list)
    samples_error: list[str] = field(default_factory=list)


async def one_request(
    conn: Conn, data: bytes, events: int, stats: Stats, start: float, timeout: float
) -> None:
    """Send one pre-built request; record its outcome. Never retries."""
    stats.requests += 1
    stats.offered_events += events
    try:
        async with asyncio.timeout(timeout):
            status, body = await conn.exchange(data)
    except TimeoutError:
        stats.errors["timeout"] += 1
        conn.close()
        stats.reconnects += 1
        return
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        stats.errors[type(exc).__name__] += 1
        if len(stats.samples_error) < 5:
            stats.samples_error.append(repr(exc)[:300])
        conn.close()
        stats.reconnects += 1
        return
    stats.latencies.append(time.perf_counter() - start)
    stats.statuses[status] += 1
    if status == 200:
        try:
            ack = _ack_decoder.decode(body)
            accepted = int(ack["accepted"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            stats.errors["bad_ack"] += 1
            return
        stats.accepted += accepted
        if accepted != events:
            stats.rejected_events += events - accepted
            if len(stats.samples_error) < 5:
                stats.samples_error.append(body[:300].decode(errors="replace"))
    elif status == 429:
        if len(stats.samples_429) < 3:
            stats.samples_429.append(body[:200].decode(errors="replace"))
    else:
        stats.errors[f"http_{status}"] += 1
        if len(stats.samples_error) < 5:
            stats.samples_error.append(f"{status}: {body[:300].decode(errors='replace')}")


class PhaseClock:
    """Wall, generator CPU and server CPU across one phase."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.mono0 = time.monotonic()
        self.t0 = time.perf_counter()
        self.cpu0 = self_cpu_seconds()
        self.server0 = proc_cpu_seconds(server_pid)
        self.threads0 = thread_cpu_seconds(server_pid)
        self.machine0 = machine_cpu()

    def finish(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        server1 = proc_cpu_seconds(self.server_pid)
        out: dict[str, Any] = {
            "mono_start": self.mono0,
            "mono_end": time.monotonic(),
            "seconds": round(wall, 3),
            "generator_cpu_util": round((self_cpu_seconds() - self.cpu0) / wall, 2),
        }
        if self.server0 is not None and server1 is not None:
            out["server_cpu_util"] = round((server1 - self.server0) / wall, 2)
            out["server_threads_cpu_util"] = thread_breakdown(
                self.server_pid, self.threads0, thread_cpu_seconds(self.server_pid), wall
            )
        busy, steal, _ = (b - a for a, b in zip(self.machine0, machine_cpu(), strict=True))
        out["machine_cpu_busy"] = round(busy / wall, 2)  # all processes, in cores
        out["machine_cpu_steal"] = round(steal / wall, 2)
        out["other_processes_cpu"] = round(
            busy / wall - out["generator_cpu_util"] - out.get("server_cpu_util", 0.0), 2
        )
        return out


def phase_result(stats: Stats, clock: dict[str, Any], **extra: Any) -> dict[str, Any]:
    wall = clock["seconds"]
    result = {
        **extra,
        **clock,
        "requests": stats.requests,
        "events_offered": stats.offered_events,
        "events_accepted": stats.accepted,
        "events_per_s": round(stats.accepted / wall) if wall else 0,
        "requests_per_s": round(stats.statuses[200] / wall) if wall else 0,
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "count_429": stats.statuses.get(429, 0),
        "errors": dict(stats.errors),
        "error_count": sum(stats.errors.values()),
        "rejected_events": stats.rejected_events,
        "reconnects": stats.reconnects,
        "latency": latency_summary(stats.latencies),
    }
    if stats.send_lag:
        result["send_lag"] = latency_summary(stats.send_lag)
    if stats.samples_429:
        result["samples_429"] = stats.samples_429
    if stats.samples_error:
        result["samples_error"] = stats.samples_error
    return result


async def open_conns(port: int, n: int) -> list[Conn]:
    conns = [Conn(port) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in conns))
    return conns


async def closed_loop(
    cfg: dict[str, Any],
    requests: list[bytes],
    events_per_request: int,
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    """Each connection sends its next request as soon as the previous one is answered."""
    conns = await open_conns(cfg["port"], concurrency)
    stats = Stats()
    position = {"next": 0}
    clock = PhaseClock(cfg["server_pid"])
    deadline = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < deadline and position["next"] < len(requests):
            data = requests[position["next"]]
            position["next"] += 1
            await one_request(
                conn, data, events_per_request, stats, time.perf_counter(), cfg["timeout"]
            )

    await asyncio.gather(*(worker(c) for c in conns))
    timing = clock.finish()
    for c in conns:
        c.close()
    return phase_result(
        stats,
        timing,
        concurrency=concurrency,
        planned_seconds=seconds,
        prebuilt_exhausted=position["next"] >= len(requests),
    )


async def open_loop(
    cfg: dict[str, Any],
    requests: list[bytes],
    events_per_request: int,
    rate_rps: float,
    connections: int,
) -> dict[str, Any]:
    """Send request i at start + i/rate whatever happened before; latency from that time."""
    conns = await open_conns(cfg["port"], connections)
    stats = Stats()
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    interval = 1.0 / rate_rps
    clock = PhaseClock(cfg["server_pid"])
    start = time.perf_counter() + 0.05
    waited_for_conn = {"max_queue": 0}

    async def dispatcher() -> None:
        for i, data in enumerate(requests):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((data, due))
            waited_for_conn["max_queue"] = max(waited_for_conn["max_queue"], queue.qsize())
        for _ in conns:
            queue.put_nowait(None)

    finished: list[tuple[float, float]] = []  # (scheduled time, latency) per answered request

    async def worker(conn: Conn) -> None:
        while (item := await queue.get()) is not None:
            data, due = item
            stats.send_lag.append(time.perf_counter() - due)
            answered = len(stats.latencies)
            await one_request(conn, data, events_per_request, stats, due, cfg["timeout"])
            if len(stats.latencies) > answered:
                finished.append((due, stats.latencies[-1]))

    tasks = [asyncio.ensure_future(worker(c)) for c in conns]
    await dispatcher()
    _, pending = await asyncio.wait(tasks, timeout=cfg["timeout"] + 30)
    for task in pending:
        task.cancel()
    not_sent = 0
    while not queue.empty():
        not_sent += queue.get_nowait() is not None
    timing = clock.finish()
    for c in conns:
        c.close()
    return phase_result(
        stats,
        timing,
        offered_rate_events_per_s=round(rate_rps * events_per_request),
        connections=connections,
        requests_not_sent=not_sent,
        max_requests_waiting_for_a_connection=waited_for_conn["max_queue"],
        windows=latency_windows(finished, start, clock.mono0 + (start - clock.t0)),
    )


def latency_windows(
    finished: list[tuple[float, float]], start: float, mono_start: float, width: float = 1.0
) -> list[dict[str, Any]]:
    """Latency per ``width`` seconds of schedule, to line stalls up with the server timeline."""
    buckets: dict[int, list[float]] = {}
    for due, latency in finished:
        buckets.setdefault(int((due - start) // width), []).append(latency)
    out = []
    for index in sorted(buckets):
        values = sorted(buckets[index])
        out.append(
            {
                "mono": round(mono_start + index * width, 3),
                "n": len(values),
                "p50_ms": round(pct(values, 50) * 1000, 1),
                "p99_ms": round(pct(values, 99) * 1000, 1),
                "max_ms": round(values[-1] * 1000, 1),
            }
        )
    return out


async def settle(cfg: dict[str, Any], limit: float) -> dict[str, Any]:
    """Wait (bounded) until the log has no pending bytes and every consumer has caught up."""
    started = time.perf_counter()
    last: dict[str, Any] = {}
    conn = Conn(cfg["port"])
    request = (
        f"GET /v1/status HTTP/1.1\r\nHost: {HOST}:{cfg['port']}\r\n"
        f"Authorization: Bearer {cfg['token']}\r\n\r\n"
    ).encode()
    try:
        while time.perf_counter() - started < limit:
            try:
                status, body = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                last = {"error": repr(exc)}
                conn.close()
                await asyncio.sleep(0.5)
                continue
            if status != 200:
                last = {"error": f"status {status}"}
                break
            last = json.loads(body)
            lag = max((c["lag_bytes"] for c in last["consumers"].values()), default=0)
            if lag == 0 and last["log_pending_bytes"] == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        conn.close()
    lags = {n: c["lag_bytes"] for n, c in last.get("consumers", {}).items()}
    return {"seconds": round(time.perf_counter() - started, 1), "consumer_lag_bytes": lags}


def prebuild(
    bodies: Bodies, cfg: dict[str, Any], path: str, count: int, batch: int | None
) -> list[bytes]:
    t0 = time.perf_counter()
    port, key = cfg["port"], cfg["write_key"]
    if batch is None:
        reqs = [http_request(path, port, key, e) for e in bodies.events(count)]
    else:
        reqs = [http_request(path, port, key, b) for b in bodies.batch_bodies(count, batch)]
    gc.collect()
    gc.freeze()  # the pre-built requests never need scanning by the cycle collector
    log(f"  pre-built {len(reqs):,} {path} requests in {time.perf_counter() - t0:.1f}s")
    return reqs


async def generator_main(cfg: dict[str, Any]) -> dict[str, Any]:
    bodies = Bodies(f"gen-{uuid.uuid4().hex[:12]}")
    size = cfg["batch_size"]
    out: dict[str, Any] = {"phases": {}, "settles": {}}
    phases = out["phases"]

    def batches_for(rate_events: float, seconds: float) -> int:
        return max(1, int(rate_events * seconds / size))

    log("generator: warm-up")
    reqs = prebuild(bodies, cfg, "/v1/batch", batches_for(cfg["max_rate"], cfg["warmup"]), size)
    phases["warmup"] = await closed_loop(cfg, reqs, size, 8, cfg["warmup"])

    for concurrency in cfg["concurrency"]:
        out["settles"][f"before_batch_max_c{concurrency}"] = await settle(cfg, cfg["settle"])
        reqs = prebuild(
            bodies, cfg, "/v1/batch", batches_for(cfg["max_rate"], cfg["phase_seconds"]), size
        )
        log(f"generator: /v1/batch max throughput, {concurrency} connections")
        phases[f"batch_max_c{concurrency}"] = await closed_loop(
            cfg, reqs, size, concurrency, cfg["phase_seconds"]
        )
        log(f"  -> {phases[f'batch_max_c{concurrency}']['events_per_s']:,} events/s")

    out["settles"]["before_batch_fixed_rate"] = await settle(cfg, cfg["settle"])
    reqs = prebuild(bodies, cfg, "/v1/batch", batches_for(cfg["rate"], cfg["duration"]), size)
    log(f"generator: /v1/batch open loop at {cfg['rate']:,} events/s for {cfg['duration']}s")
    phases["batch_fixed_rate"] = await open_loop(
        cfg, reqs, size, cfg["rate"] / size, cfg["open_connections"]
    )
    del reqs
    log(f"  -> p99 {phases['batch_fixed_rate']['latency']['p99_ms']} ms")

    out["settles"]["before_track_max"] = await settle(cfg, cfg["settle"])
    reqs = prebuild(
        bodies, cfg, "/v1/track", int(cfg["max_track_rate"] * cfg["track_seconds"]), None
    )
    log(f"generator: /v1/track max throughput, {cfg['track_concurrency']} connections")
    phases["track_max"] = await closed_loop(
        cfg, reqs, 1, cfg["track_concurrency"], cfg["track_seconds"]
    )
    log(f"  -> {phases['track_max']['events_per_s']:,} events/s")
    out["settles"]["after_all"] = await settle(cfg, cfg["settle"])
    out["events_generated"] = bodies.counter
    return out


def generator_entry() -> None:
    cfg = json.loads(sys.stdin.read())
    result = run_async(generator_main(cfg))
    result["client"] = "asyncio + uvloop, raw HTTP/1.1 keep-alive over asyncio streams"
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# 3. The server, its sampler, and the run as a whole
# --------------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every second: server RSS, CPU and /v1/status (log pending bytes, consumer lag)."""

    def __init__(self, pid: int, port: int, token: str) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pid, self.port, self.token = pid, port, token
        self.samples: list[dict[str, Any]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        threads = thread_cpu_seconds(self.pid)
        last = time.monotonic()
        while not self._stop_event.is_set():
            t = time.monotonic()
            now_threads = thread_cpu_seconds(self.pid)
            sample: dict[str, Any] = {
                "mono": t,
                "rss_kb": proc_rss_kb(self.pid),
                "cpu_s": proc_cpu_seconds(self.pid),
                "threads": thread_breakdown(self.pid, threads, now_threads, max(t - last, 1e-3)),
            }
            threads, last = now_threads, t
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {self.token}"})
                response = conn.getresponse()
                status = json.loads(response.read())
                sample["pending_bytes"] = status["log_pending_bytes"]
                sample["log_end"] = status["log_end"]
                sample["lag_bytes"] = {n: c["lag_bytes"] for n, c in status["consumers"].items()}
                sample["consumer_errors"] = {n: c["errors"] for n, c in status["consumers"].items()}
                sample["status_ms"] = round((time.monotonic() - t) * 1000, 1)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                sample["status_error"] = repr(exc)[:200]
                if conn is not None:
                    conn.close()
                conn = None
            self.samples.append(sample)
            self._stop_event.wait(max(0.0, 1.0 - (time.monotonic() - t)))
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def memory_summary(samples: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    window = [s for s in samples if start <= s["mono"] <= end and s["rss_kb"]]
    if not window:
        return {}
    rss = [s["rss_kb"] / 1024 for s in window]
    ts = [s["mono"] - window[0]["mono"] for s in window]
    slope = 0.0
    if len(window) > 2:
        mean_t, mean_r = sum(ts) / len(ts), sum(rss) / len(rss)
        var = sum((t - mean_t) ** 2 for t in ts)
        if var:
            slope = sum((t - mean_t) * (r - mean_r) for t, r in zip(ts, rss, strict=True)) / var
    second_half = rss[len(rss) // 2 :]
    fifth = max(1, len(rss) // 5)
    first_median = statistics.median(rss[:fifth])
    last_median = statistics.median(rss[-fifth:])
    lags = [max(s["lag_bytes"].values(), default=0) for s in window if "lag_bytes" in s]
    pending = [s["pending_bytes"] for s in window if "pending_bytes" in s]
    return {
        "samples": len(window),
        "rss_start_mb": round(rss[0], 1),
        "rss_end_mb": round(rss[-1], 1),
        "rss_min_mb": round(min(rss), 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_max_second_half_mb": round(max(second_half), 1),
        "rss_slope_mb_per_min": round(slope * 60, 2),
        "rss_median_first_fifth_mb": round(first_median, 1),
        "rss_median_last_fifth_mb": round(last_median, 1),
        "rss_median_growth_pct": round((last_median / first_median - 1) * 100, 1),
        "max_consumer_lag_mb": round(max(lags, default=0) / 1e6, 1),
        "end_consumer_lag_mb": round(lags[-1] / 1e6, 1) if lags else None,
        "max_log_pending_mb": round(max(pending, default=0) / 1e6, 2),
    }


def stall_attribution(
    windows: list[dict[str, Any]], samples: list[dict[str, Any]], limit_ms: float = 50.0
) -> dict[str, Any]:
    """Join each second of open-loop latency with the server sample taken just after it."""
    monos = [s["mono"] for s in samples]
    joined = []
    for w in windows:
        i = min(bisect.bisect_left(monos, w["mono"] + 1.0), len(samples) - 1)
        cpu = samples[i].get("threads", {})
        loop = cpu.get("main (event loop)", 0.0)
        joined.append(
            {
                **w,
                "loop_cpu": loop,
                "other_cpu": round(sum(cpu.values()) - loop, 3),
                "threads": cpu,
                "rss_mb": round((samples[i]["rss_kb"] or 0) / 1024, 1),
                "lag_mb": round(max(samples[i].get("lag_bytes", {}).values(), default=0) / 1e6, 2),
            }
        )
    bad = [w for w in joined if w["p99_ms"] > limit_ms]
    good = [w for w in joined if w["p99_ms"] <= limit_ms]

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(r[key] for r in rows) / len(rows), 2) if rows else None

    return {
        "seconds": len(joined),
        "bad_seconds": len(bad),
        "loop_cpu_bad": mean(bad, "loop_cpu"),
        "loop_cpu_good": mean(good, "loop_cpu"),
        "other_threads_cpu_bad": mean(bad, "other_cpu"),
        "other_threads_cpu_good": mean(good, "other_cpu"),
        "windows": joined,
    }


def cli(*args: str) -> str:
    command = [sys.executable, "-m", "kirana.cli.main", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def wait_healthy(port: int, server: subprocess.Popen, limit: float = 60.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode} before it was healthy")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return time.perf_counter() - t0
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {limit}s")


def stop_server(server: subprocess.Popen, sig: int = signal.SIGTERM) -> dict[str, Any]:
    if server.poll() is not None:
        return {"already_exited": True, "returncode": server.returncode}
    t0 = time.perf_counter()
    server.send_signal(sig)
    try:
        code = server.wait(timeout=90)
        killed = False
    except subprocess.TimeoutExpired:
        server.kill()
        code = server.wait(timeout=10)
        killed = True
    return {"returncode": code, "seconds": round(time.perf_counter() - t0, 2), "killed": killed}


def count_log_records(data_dir: Path) -> dict[str, int]:
    """Records in the server's event log, whichever backend its settings chose."""
    from kirana.config import load_settings
    from kirana.eventlog.records import EVENT, QUARANTINE
    from kirana.runtime import open_log

    counts = {"E": 0, "Q": 0, "other": 0}
    event_log = open_log(load_settings(data_dir))
    try:
        offset = event_log.start_offset
        while offset < event_log.end_offset:
            result = event_log.read(offset, max_records=200_000)
            for record in result.records:
                k = record.payload[:1]
                key = "E" if k == EVENT else "Q" if k == QUARANTINE else "other"
                counts[key] += 1
            offset = result.next_offset
    finally:
        event_log.close()
    return counts


def server_problems(path: Path, limit: int = 40) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    flagged = [
        ln for ln in lines if any(w in ln for w in ("ERROR", "CRITICAL", "Traceback", "WARNING"))
    ]
    return flagged[:limit]


def run_http(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "data"
    write_key = cli("sources", "create", "bench", "--data-dir", str(data_dir)).splitlines()[-1]
    token = cli("tokens", "create", "bench", "--role", "viewer", "--data-dir", str(data_dir))
    token = token.splitlines()[-1]
    port = free_port()
    server_log = workdir / "server.log"
    profile = (
        ["-m", "cProfile", "-o", str(args.profile_server.resolve())] if args.profile_server else []
    )
    entry = [str(Path(__file__).resolve()), SERVE_SOME, args.consumers] if args.consumers else []
    command = [
        sys.executable,
        *profile,
        *(entry or ["-m", "kirana.cli.main"]),
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    result: dict[str, Any] = {"port": port, "server_command": " ".join(command[1:])}
    with open(server_log, "wb") as server_out:
        server = subprocess.Popen(command, stdout=server_out, stderr=subprocess.STDOUT)
    sampler: Sampler | None = None
    try:
        result["startup_seconds"] = round(wait_healthy(port, server), 2)
        log(f"server pid {server.pid} healthy on port {port}")
        sampler = Sampler(server.pid, port, token)
        sampler.start()
        cfg = {
            "port": port,
            "write_key": write_key,
            "token": token,
            "server_pid": server.pid,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "phase_seconds": args.phase_seconds,
            "max_rate": args.max_rate,
            "rate": args.rate,
            "duration": args.duration,
            "open_connections": args.open_connections,
            "track_concurrency": args.track_concurrency,
            "track_seconds": args.track_seconds,
            "max_track_rate": args.max_track_rate,
            "timeout": args.timeout,
            "settle": args.settle,
            "warmup": args.warmup,
        }
        budget = (
            args.warmup
            + len(args.concurrency) * (args.phase_seconds + args.settle)
            + args.duration
            + args.track_seconds
            + 3 * args.settle
            + 2 * args.timeout
            + 300
        )
        generator = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--generator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        result["generator_pid"] = generator.pid
        try:
            stdout, _ = generator.communicate(json.dumps(cfg).encode(), timeout=budget)
        except subprocess.TimeoutExpired:
            generator.kill()
            generator.wait()
            raise RuntimeError(f"load generator did not finish within {budget:.0f}s") from None
        if generator.returncode != 0:
            raise RuntimeError(f"load generator failed with exit code {generator.returncode}")
        gen = json.loads(stdout)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["generator"] = {
            "client": gen["client"],
            "events_generated": gen["events_generated"],
            "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        }
        result["settles"] = gen["settles"]
        result["server_alive_after_load"] = server.poll() is None
    finally:
        if sampler is not None:
            sampler.stop()
        log("stopping the server (SIGTERM)")
        # cProfile writes its file only if the process exits through Python (SIGINT does).
        result["shutdown"] = stop_server(server, signal.SIGINT if profile else signal.SIGTERM)
    samples = sampler.samples if sampler else []
    phases = gen["phases"]
    for phase in phases.values():
        phase["memory"] = memory_summary(samples, phase["mono_start"], phase["mono_end"])
    result["phases"] = phases
    fixed = phases.get("batch_fixed_rate")
    if fixed and samples:
        fixed["stalls"] = stall_attribution(fixed.pop("windows", []), samples)
        result["fixed_rate_windows"] = fixed["stalls"].pop("windows")
    if samples:
        whole = memory_summary(samples, samples[0]["mono"], samples[-1]["mono"])
        result["memory_whole_run"] = whole
        consumer_errors = samples[-1].get("consumer_errors") or {}
        result["consumer_errors"] = consumer_errors
    result["timeline"] = [
        {
            "t": round(s["mono"] - samples[0]["mono"], 1),
            "rss_mb": round((s["rss_kb"] or 0) / 1024, 1),
            "lag_mb": round(max(s.get("lag_bytes", {}).values(), default=0) / 1e6, 2),
            "pending_mb": round(s.get("pending_bytes", 0) / 1e6, 2),
            "cpu": s.get("threads", {}),
            **({"status_error": s["status_error"]} if "status_error" in s else {}),
        }
        for s in samples
    ]
    result["server_log_flagged"] = server_problems(server_log)
    if not args.no_verify:
        log("verifying the event log against the acknowledgements")
        counts = count_log_records(data_dir)
        acked = sum(p["events_accepted"] for p in phases.values())
        result["verify"] = {
            "acked_events": acked,
            "log_event_records": counts["E"],
            "log_quarantine_records": counts["Q"],
            "missing_acked_events": max(0, acked - counts["E"]),
        }
    return result


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report(results: dict[str, Any], targets: dict[str, float]) -> str:
    m = results["machine"]
    lines = [
        f"## Kirana ingest benchmark, {m['date']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Linux {m['kernel']}",
        f"Server: {results.get('server_variant', 'kirana serve')}, commit {m.get('git_commit')}"
        + (" + uncommitted src changes" if m.get("src_uncommitted_changes") else ""),
        "",
    ]
    b = results.get("baseline")
    if b:
        f4 = b["fsync_4k"]
        lines += [
            "### Baseline (in-process, no HTTP)",
            "",
            "| Measurement | events/s | notes |",
            "|---|---:|---|",
            f"| decode + normalize + encode (CPU only) | {_fmt(b['cpu_only']['events_per_s'])} "
            f"| {b['cpu_only']['us_per_event']} µs/event, one thread |",
            f"| ... + fsync'd FileEventLog append (group commit) "
            f"| {_fmt(b['full_pipeline']['events_per_s'])} "
            f"| {b['full_pipeline']['concurrency']} asyncio tasks x {results['batch_size']}-event "
            f"appends; append p99 {b['full_pipeline']['append_latency']['p99_ms']} ms |",
            f"| bare fsync'd append of pre-encoded records "
            f"| {_fmt(b['bare_append']['events_per_s'])} | {b['bare_append']['mb_per_s']} MB/s, "
            f"{b['record_bytes']} B/record |",
            f"| one 4 KiB write + fdatasync | - | p50 {f4['p50_ms']} ms, p99 {f4['p99_ms']} ms |",
            "",
        ]
    h = results.get("http")
    if h:
        lines += [
            "### HTTP (server and generator in separate processes, loopback)",
            "",
            "| Phase | conns | events/s | p50 ms | p99 ms | max ms | 429 | errors "
            "| server CPU | gen CPU | other CPU | RSS start/end/max MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, p in h["phases"].items():
            lat, mem = p["latency"], p.get("memory", {})
            conns = p.get("concurrency", p.get("connections"))
            label = name
            if name == "batch_fixed_rate":
                label = f"batch open loop @ {p['offered_rate_events_per_s']:,} ev/s"
            rss = (
                f"{mem.get('rss_start_mb')}/{mem.get('rss_end_mb')}/{mem.get('rss_max_mb')}"
                if mem
                else "-"
            )
            errors = p["error_count"] + p.get("requests_not_sent", 0) + p["rejected_events"]
            if p.get("prebuilt_exhausted") and name != "warmup":
                label += " (ran out of pre-built requests: raise --max-rate)"
            lines.append(
                f"| {label} | {conns} | {_fmt(p['events_per_s'])} | {_fmt(lat['p50_ms'])} "
                f"| {_fmt(lat['p99_ms'])} | {_fmt(lat['max_ms'])} | {p['count_429']} | {errors} "
                f"| {p.get('server_cpu_util', '-')} | {p['generator_cpu_util']} "
                f"| {p.get('other_processes_cpu', '-')} | {rss} |"
            )
        fixed = h["phases"]["batch_fixed_rate"]
        lines += [
            "",
            "CPU columns are in cores (this machine has "
            f"{m['nproc']}); 'other' is everything else on the machine, kernel included.",
            f"Open-loop send lag (generator lateness, included in the latencies above): "
            f"p99 {fixed['send_lag']['p99_ms']} ms, max {fixed['send_lag']['max_ms']} ms.",
            f"Generator: {h['generator']['client']}.",
        ]
        mem = fixed.get("memory", {})
        if mem:
            lines.append(
                f"Sustained phase memory: {mem['rss_start_mb']} -> {mem['rss_end_mb']} MB "
                f"(median of first/last fifth {mem['rss_median_first_fifth_mb']}/"
                f"{mem['rss_median_last_fifth_mb']}, max {mem['rss_max_mb']}, slope "
                f"{mem['rss_slope_mb_per_min']} MB/min over {fixed['seconds']:.0f} s); "
                f"consumer lag max {mem['max_consumer_lag_mb']} MB, "
                f"at end {mem['end_consumer_lag_mb']} MB."
            )
        stalls = fixed.get("stalls")
        if stalls:
            lines.append(
                f"Seconds of the sustained phase whose p99 was over 50 ms: {stalls['bad_seconds']}"
                f" of {stalls['seconds']}; server CPU outside the event-loop thread in those "
                f"seconds {stalls['other_threads_cpu_bad']} vs {stalls['other_threads_cpu_good']}"
                f" in the others (event loop {stalls['loop_cpu_bad']} vs "
                f"{stalls['loop_cpu_good']})."
            )
        v = h.get("verify")
        if v:
            lines.append(
                f"Log check: {v['acked_events']:,} events acknowledged, "
                f"{v['log_event_records']:,} event records in the log "
                f"({v['missing_acked_events']} missing)."
            )
        lines.append(
            f"Server shutdown: {h['shutdown']}; flagged server log lines: "
            f"{len(h['server_log_flagged'])}."
        )
    s = results.get("summary")
    if s:
        flat = "yes" if s["memory_flat"] else "NO"
        if s["sustained_seconds"] < 290:
            flat += " (short run; use --soak 300)"
        lines += [
            "",
            "### Against the targets",
            "",
            "| Target | Measured | Met |",
            "|---|---|---|",
            f"| >= {targets['throughput']:,.0f} events/s through /v1/batch "
            f"| {s['best_batch_events_per_s']:,} events/s ({s['best_batch_phase']}) "
            f"| {'yes' if s['throughput_met'] else 'NO'} |",
            f"| p99 < {targets['p99_ms']:.0f} ms at {results['rate']:,} events/s "
            f"| p99 {s['fixed_rate_p99_ms']} ms "
            f"| {'yes' if s['p99_met'] else 'NO'} |",
            f"| memory flat over the sustained phase ({s['sustained_seconds']:.0f} s; "
            f"median RSS of the last fifth within {targets['rss_growth_pct']:.0f}% of the first) "
            f"| {s['rss_median_first_fifth_mb']} -> {s['rss_median_last_fifth_mb']} MB "
            f"({s['rss_median_growth_pct']:+}%), slope {s['rss_slope_mb_per_min']} MB/min "
            f"| {flat} |",
            "",
            f"HTTP / in-process ratio: {s['http_to_baseline_ratio']:.2f} "
            f"({s['best_batch_events_per_s']:,} vs {s['baseline_events_per_s']:,} events/s).",
        ]
    return "\n".join(lines)


def summarize(results: dict[str, Any], targets: dict[str, float]) -> dict[str, Any]:
    phases = results["http"]["phases"]
    batch = {k: v for k, v in phases.items() if k.startswith("batch_max")}
    best_name = max(batch, key=lambda k: batch[k]["events_per_s"])
    best = batch[best_name]["events_per_s"]
    fixed = phases["batch_fixed_rate"]
    base = results["baseline"]["full_pipeline"]["events_per_s"]
    mem = fixed.get("memory", {})
    p99 = fixed["latency"]["p99_ms"]
    failures = fixed["error_count"] + fixed["count_429"] + fixed.get("requests_not_sent", 0)
    return {
        "best_batch_phase": best_name,
        "best_batch_events_per_s": best,
        "throughput_met": best >= targets["throughput"],
        "fixed_rate_p99_ms": p99,
        "fixed_rate_failures": failures,
        "p99_met": p99 is not None and p99 < targets["p99_ms"] and failures == 0,
        "sustained_seconds": fixed["seconds"],
        "rss_slope_mb_per_min": mem.get("rss_slope_mb_per_min"),
        "rss_median_first_fifth_mb": mem.get("rss_median_first_fifth_mb"),
        "rss_median_last_fifth_mb": mem.get("rss_median_last_fifth_mb"),
        "rss_median_growth_pct": mem.get("rss_median_growth_pct"),
        "memory_flat": mem.get("rss_median_growth_pct") is not None
        and mem["rss_median_growth_pct"] <= targets["rss_growth_pct"],
        "stalls": fixed.get("stalls"),
        "baseline_events_per_s": base,
        "http_to_baseline_ratio": best / base if base else 0.0,
        "track_events_per_s": phases["track_max"]["events_per_s"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Kirana ingest benchmark: raw in-process baseline vs the HTTP tracking API.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=30,
        help="seconds of the sustained fixed-rate /v1/batch phase",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="SECONDS",
        help="alias for --duration, e.g. --soak 300 for the 5-minute memory run",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=20_000,
        help="offered events/s in the fixed-rate phase (open loop)",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch request")
    parser.add_argument(
        "--concurrency",
        default="8,16,32",
        help="connection counts for the /v1/batch max-throughput phases",
    )
    parser.add_argument(
        "--phase-seconds", type=float, default=10, help="seconds of each max-throughput phase"
    )
    parser.add_argument(
        "--max-rate",
        type=int,
        default=150_000,
        help="events/s to pre-build bodies for in closed-loop batch phases "
        "(a phase ends early if the server is faster)",
    )
    parser.add_argument(
        "--open-connections", type=int, default=64, help="connection pool of the open-loop phase"
    )
    parser.add_argument(
        "--track-concurrency", type=int, default=32, help="connections for the /v1/track phase"
    )
    parser.add_argument("--track-seconds", type=float, default=10)
    parser.add_argument(
        "--max-track-rate",
        type=int,
        default=20_000,
        help="requests/s to pre-build for the /v1/track phase",
    )
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up load")
    parser.add_argument(
        "--settle",
        type=float,
        default=60,
        help="at most this long to wait for consumers to catch up between phases",
    )
    parser.add_argument("--timeout", type=float, default=30, help="per-request timeout (seconds)")
    parser.add_argument(
        "--baseline-seconds", type=float, default=5, help="seconds of each in-process baseline"
    )
    parser.add_argument(
        "--baseline-concurrency",
        type=int,
        default=16,
        help="concurrent appenders in the in-process baselines",
    )
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=None,
        help="where the temp data dir goes (None: the system temp dir)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip counting the event log's records after the run",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (None: benchmarks/results/ingest-<UTC time>.json)",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="FILE",
        help="run the server under cProfile (its main thread: the event loop) and write "
        "the stats to FILE; slows the server, so figures from such a run are not comparable",
    )
    parser.add_argument(
        "--consumers",
        default=None,
        metavar="NAMES",
        help="diagnostic: start only these in-process consumers of the server (comma-separated "
        "names as in GET /v1/status, e.g. lake-loader; 'none' for none) to attribute their "
        "cost; default: all of them, i.e. plain `kirana serve`",
    )
    parser.add_argument(
        "--without-consumers",
        action="store_true",
        help="diagnostic: same as --consumers none",
    )
    parser.add_argument(
        "--log",
        choices=["file", "nats"],
        default="file",
        help="the server's event log: segment files, or NATS JetStream on a private "
        "nats-server (sync_interval: always) unless --nats-url is given",
    )
    parser.add_argument("--nats-url", help="with --log nats: use this JetStream server")
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.soak is not None:
        args.duration = args.soak
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.without_consumers:
        args.consumers = "none"
    return args


SERVE_SOME = "--serve-with-consumers"


def serve_with_consumers(keep: str, serve_args: list[str]) -> None:
    """Diagnostic: ``kirana serve`` with only the named in-process consumers started, to tell
    the ingest path's own cost from theirs. Server code is unchanged; the platform's consumer
    list is filtered after it is built (the others are built but never started)."""
    from kirana.cli.main import app
    from kirana.runtime import Platform

    wanted = {n.strip() for n in keep.split(",") if n.strip() and n.strip() != "none"}
    original = Platform.open.__func__  # type: ignore[attr-defined]

    os.environ["KIRANA_WORKER_PROCESS"] = "false"  # the diagnostic filters in-process threads

    def open_with_some(cls: type[Platform], settings: Any, *args: Any, **kw: Any) -> Platform:
        platform = original(cls, settings, *args, **kw)
        unknown = wanted - set(platform.consumers)
        if unknown:
            raise SystemExit(
                f"unknown consumers {sorted(unknown)}; have {sorted(platform.consumers)}"
            )
        for name in list(platform.consumers):
            if name not in wanted:
                del platform.consumers[name]
        return platform

    Platform.open = classmethod(open_with_some)  # type: ignore[method-assign]
    app(args=serve_args, prog_name="kirana")


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == [SERVE_SOME]:
        serve_with_consumers(raw[1], raw[2:])
        return 0
    args = parse_args(argv)
    if args.generator:
        generator_entry()
        return 0
    targets = {"throughput": 50_000, "p99_ms": 50.0, "rss_growth_pct": 5.0}
    results: dict[str, Any] = {
        "machine": machine_facts(),
        "argv": sys.argv[1:],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "batch_size": args.batch_size,
        "rate": args.rate,
        "targets": targets,
        "server_variant": f"kirana serve with only these consumers: {args.consumers} (diagnostic)"
        if args.consumers
        else "kirana serve (all in-process consumers)",
    }
    results["server_variant"] += f"; event log: {args.log}"
    workdir = Path(tempfile.mkdtemp(prefix="kirana-bench-", dir=args.tmp_dir))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    nats_server = None
    try:
        if args.log == "nats":  # the server, its worker and the CLI read these
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from eventlog import start_nats

            url = args.nats_url
            if url is None:
                (workdir / "nats").mkdir()
                nats_server, url = start_nats(workdir / "nats" / "store", "always")
            os.environ["KIRANA_LOG__BACKEND"] = "nats"
            os.environ["KIRANA_LOG__NATS_URL"] = url
            os.environ["KIRANA_LOG__NATS_STREAM"] = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
        results["baseline"] = run_baselines(args, workdir)
        results["http"] = run_http(args, workdir)
        results["summary"] = summarize(results, targets)
    finally:
        if nats_server is not None:
            nats_server.terminate()
            nats_server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        output = args.output or RESULTS_DIR / f"ingest-{stamp}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, default=str))
        log(f"wrote {output}")
    print(report(results, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
