"""Delivery throughput to a local webhook, and the cost of diffing a big sync.

Part 1 — webhook throughput. A receiver runs in its own process (plain
``http.server``, answers 200, counts records). In this process: the wire
ceiling (pre-encoded batches POSTed back to back with httpx — no queue), the
enqueue rate of the delivery store (what the router does per log batch), and
the deliverer draining a queue of ``--records`` records through the real
webhook backend (signing, per-record status, SQLite WAL). Delivery is reported
as records/s and as a fraction of the wire ceiling.

Part 2 — sync diff. A Delta table of ``--rows`` rows (a model-output shape:
user, churn risk, category, date) is synced once (the initial load: every row
queued), then ``--changed`` of the rows are modified and the sync runs again.
Each phase runs in a fresh process so its peak RSS is its own: the initial
sync run; a plain scan of the table (read into Arrow, nothing else: the
baseline); the diff alone (source already in memory: hash, join against the
previous snapshot, write the next one, stream the changed rows out of DuckDB);
and the whole second sync run (scan + diff + queueing the changes in SQLite).

    .venv/bin/python benchmarks/delivery.py                      # both parts
    .venv/bin/python benchmarks/delivery.py --part diff --rows 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- part 1: webhook throughput ------------------------------------------------------------


def _receiver(port_queue) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def webhook_part(records: int, batch_sizes: list[int]) -> list[dict]:
    import httpx
    import msgspec

    from kirana.destinations.config import parse_destination
    from kirana.destinations.deliverer import Deliverer
    from kirana.destinations.records import OutboundRecord
    from kirana.destinations.registry import build
    from kirana.destinations.store import DeliveryStore

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_receiver, args=(ports,), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
    results = []
    try:
        for batch in batch_sizes:
            tmp = Path(tempfile.mkdtemp(prefix="kirana-bench-delivery-"))
            store = DeliveryStore(tmp / "delivery.sqlite")
            sample = [
                OutboundRecord(
                    f"m-{i}",
                    f"user-{i % 5000}",
                    f"user-{i % 5000}",
                    "event",
                    {
                        "type": "track",
                        "event": "Product Viewed",
                        "userId": f"user-{i % 5000}",
                        "messageId": f"m-{i}",
                        "properties": {"product_id": f"p{i % 14000}", "price": 3.5},
                    },
                )
                for i in range(records)
            ]
            # wire ceiling: the same bodies, POSTed back to back, no queue
            bodies = [
                msgspec.json.encode({"batch": [r.wire() for r in sample[i : i + batch]]})
                for i in range(0, min(records, 20 * batch * 10), batch)
            ]
            with httpx.Client() as client:
                started = time.perf_counter()
                sent = 0
                for body in bodies:
                    client.post(url, content=body, headers={"Content-Type": "application/json"})
                    sent += batch
                wire = sent / (time.perf_counter() - started)
            # enqueue, as the router does: chunks of 5,000 in one transaction each
            started = time.perf_counter()
            for i in range(0, records, 5000):
                store.enqueue([("hook", r) for r in sample[i : i + 5000]], "bench")
            enqueue_rate = records / (time.perf_counter() - started)
            config = parse_destination(
                {
                    "name": "hook",
                    "kind": "webhook",
                    "settings": {"url": url, "secret": "bench-secret-of-some-length"},
                    "batch_size": batch,
                }
            )
            store.save_destination(config)
            deliverer = Deliverer(store, config, build(config))
            started = time.perf_counter()
            while store.candidates("hook", 1):
                pause = deliverer.step()
                if pause:
                    time.sleep(pause)
            elapsed = time.perf_counter() - started
            health = store.health("hook")
            deliverer.stop()
            store.close()
            shutil.rmtree(tmp, ignore_errors=True)
            row = {
                "batch_size": batch,
                "records": records,
                "wire_ceiling_rps": round(wire),
                "enqueue_rps": round(enqueue_rate),
                "delivered_rps": round(records / elapsed),
                "fraction_of_wire": round(records / elapsed / wire, 3),
                "dead_letters": health["dead_letters"],
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    finally:
        proc.terminate()
    return results


# -- part 2: sync diff ---------------------------------------------------------------------


def _write_table(lake: Path, rows: int, changed: float, seed: int) -> None:
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(7)
    risk = rng.random(rows)
    category = rng.integers(0, 20, rows)
    if seed:
        pick = np.random.default_rng(seed).choice(rows, int(rows * changed), replace=False)
        risk[pick] = rng.random(len(pick))
    table = pa.table(
        {
            "user_id": pa.array([f"user-{i:08d}" for i in range(rows)]),
            "churn_risk": pa.array(risk),
            "next_best_category": pa.array([f"cat-{c}" for c in category]),
            "scored_on": pa.array(["2026-11-30"] * rows),
        }
    )
    write_deltalake(str(lake / "churn_scores"), table, mode="overwrite")


def phase(kind: str, data: Path) -> dict:
    """One measured step, in this (fresh) process."""
    import duckdb  # imported before any clock starts
    import pyarrow.dataset  # noqa: F401 (slow first import: seconds on a busy machine)

    import kirana.lake.catalog  # noqa: F401
    from kirana.destinations.store import DeliveryStore
    from kirana.syncs.runner import SyncRunner
    from kirana.syncs.sources import query_lake
    from kirana.syncs.store import SyncStore

    out: dict = {}
    if kind == "diff":  # the diff alone: source already in memory, nothing queued
        from kirana.syncs.diff import diff_rows

        table = query_lake(data / "lake", "SELECT * FROM churn_scores")
        snapshot = max((data / "snapshots" / "churn").glob("*.parquet"))
        mapping = {"churn_risk": "churn_risk", "next_best_category": "next_best_category"}
        before = rss_mb()
        started = time.perf_counter()
        diff = diff_rows(
            duckdb.connect(), table, "user_id", mapping, snapshot, data / "scratch.parquet"
        )
        changed = sum(len(part) for part in diff.iter_changed(id_prefix="churn|"))
        out.update(rows=diff.rows_read, changed=changed)
    before = rss_mb() if kind != "diff" else before
    started = time.perf_counter() if kind != "diff" else started
    if kind == "scan":
        table = query_lake(data / "lake", "SELECT * FROM churn_scores")
        out["rows"] = table.num_rows
    elif kind == "sync":
        store = DeliveryStore(data / "delivery.sqlite")
        runner = SyncRunner(SyncStore(store), store, data / "lake", data / "snapshots")
        report = runner.run("churn")
        out.update(rows=report.rows_read, queued=report.queued, updated=report.updated)
    out.update(
        phase=kind,
        seconds=round(time.perf_counter() - started, 3),
        rss_before_mb=round(before),
        peak_mb=round(peak_mb()),
        peak_growth_mb=round(peak_mb() - before),
    )
    return out


def _child(kind: str, data: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", kind, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def diff_part(sizes: list[int], changed: float) -> list[dict]:
    from kirana.destinations.config import parse_destination
    from kirana.destinations.store import DeliveryStore
    from kirana.syncs.model import parse_sync
    from kirana.syncs.store import SyncStore

    results = []
    for rows in sizes:
        data = Path(tempfile.mkdtemp(prefix="kirana-bench-diff-"))
        (data / "lake").mkdir()
        _write_table(data / "lake", rows, changed, seed=0)
        store = DeliveryStore(data / "delivery.sqlite")
        store.save_destination(
            parse_destination(
                {
                    "name": "hook",
                    "kind": "webhook",
                    "settings": {"url": "http://127.0.0.1:9/none", "secret": "x" * 20},
                }
            )
        )
        SyncStore(store).save(
            parse_sync(
                {
                    "name": "churn",
                    "source": {"sql": "SELECT * FROM churn_scores"},
                    "key": "user_id",
                    "destination": "hook",
                    "mapping": {
                        "churn_risk": "churn_risk",
                        "next_best_category": "next_best_category",
                    },
                }
            )
        )
        store.close()
        initial = _child("sync", data)
        _write_table(data / "lake", rows, changed, seed=11)
        scan = _child("scan", data)
        diff_only = _child("diff", data)
        diff = _child("sync", data)
        row = {
            "rows": rows,
            "changed_fraction": changed,
            "initial_seconds": initial["seconds"],
            "initial_queued": initial["queued"],
            "initial_peak_growth_mb": initial["peak_growth_mb"],
            "scan_seconds": scan["seconds"],
            "scan_peak_growth_mb": scan["peak_growth_mb"],
            "diff_only_seconds": diff_only["seconds"],
            "diff_only_peak_growth_mb": diff_only["peak_growth_mb"],
            "diff_only_changed": diff_only["changed"],
            "sync_run_seconds": diff["seconds"],
            "sync_run_queued": diff["queued"],
            "sync_run_peak_growth_mb": diff["peak_growth_mb"],
            "sync_run_over_scan": round(diff["seconds"] / scan["seconds"], 2),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
        shutil.rmtree(data, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "webhook", "diff"], default="all")
    parser.add_argument("--records", type=int, default=50_000, help="records to deliver")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--changed", type=float, default=0.01, help="fraction changed")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.data)))
        return
    print(
        f"# delivery benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    if args.part in ("all", "webhook"):
        webhook_part(args.records, args.batch_sizes)
    if args.part in ("all", "diff"):
        diff_part(args.rows, args.changed)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
