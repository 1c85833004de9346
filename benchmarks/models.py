"""Model jobs at 10k-1M users: embedded engine vs Spark local mode (docs/benchmarks.md).

Users are resampled from the Instacart sample (593 real users, ~26 orders and ~250 order
lines each): simulated user k is real user ``k % 593`` with its own user and order ids and
its history shifted by up to 30 days, so cost grows with users at a realistic history
length. ``--catalogues C`` gives each of C groups of users its own copy of the catalogue
(items = 14,190 x C) to see how cost grows with items.

The orders are written once per size as a Delta table of order lines (``order_lines``,
read by both engines as an extra order table beside an empty ``events`` table), then every
job runs through the engine's public API: wall time includes reading the lake, fitting,
scoring and returning the Arrow table. Peak memory is the high-water RSS of this process
and, for Spark, of the driver JVM and its Python workers (``VmHWM`` in /proc).

Each size runs in its own process (``_harness.run_each_size``) so peaks do not mix:

    python benchmarks/models.py --sizes 10000,100000 --engines embedded,spark
    python benchmarks/models.py --single --users 10000 --engine spark     # one point
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))

from _harness import run_each_size

#: above this many users both engines skip TIFU-KNN's neighbour search (quadratic in users)
NEIGHBOUR_USERS = 20_000


def make_lake(root: Path, users: int, catalogues: int, seed: int = 0) -> dict[str, int]:
    """Write ``order_lines`` (+ an empty ``events``) for ``users`` resampled users."""
    import pandas as pd
    from deltalake import DeltaTable, write_deltalake

    from kirana.demo.instacart import sample_path
    from kirana.lake import events_table

    cols = ["user_id", "order_id", "order_number", "days_since_prior_order", "product_id"]
    base = pd.read_csv(sample_path(), usecols=cols)
    base["days_since_prior_order"] = base["days_since_prior_order"].fillna(0)
    base = base.sort_values(["user_id", "order_number"])
    orders = base.drop_duplicates("order_id").copy()
    orders["day"] = orders.groupby("user_id")["days_since_prior_order"].cumsum()
    day = base["order_id"].map(orders.set_index("order_id")["day"]).to_numpy()
    real_users = np.sort(base["user_id"].unique())
    n_real = len(real_users)
    user_pos = np.searchsorted(real_users, base["user_id"].to_numpy())
    rng = np.random.default_rng(seed)
    sizes = {"lines": 0, "orders": 0}
    items: set[str] = set()

    def chunks() -> Iterator[pa.RecordBatch]:
        # one resampled copy of the sample at a time, streamed to the writer: the lake of
        # 1M users (~250M lines) never sits in memory
        for rep in range(math.ceil(users / n_real)):
            keep = user_pos + rep * n_real < users
            jitter = rng.uniform(0, 30, n_real)[user_pos[keep]]
            tag = pa.scalar(f"-s{rep}")
            group = (user_pos[keep] + rep * n_real) % catalogues
            uid = pa.array(base["user_id"].to_numpy()[keep]).cast(pa.string())
            oid = pa.array(base["order_id"].to_numpy()[keep]).cast(pa.string())
            pid = pa.array(base["product_id"].to_numpy()[keep]).cast(pa.string())
            if catalogues > 1:
                pid = pc.binary_join_element_wise(pid, pa.array(group.astype(str)), "-c")
            seconds = (day[keep] + jitter) * 86_400 + base["order_number"].to_numpy()[keep]
            micros = ((1_767_225_600 + seconds) * 1e6).astype(np.int64)
            batch = pa.record_batch(
                {
                    "user_id": pc.binary_join_element_wise(uid, tag, ""),
                    "order_id": pc.binary_join_element_wise(oid, tag, ""),
                    "order_time": pa.array(micros).cast(pa.timestamp("us", tz="UTC")),
                    "product_id": pid,
                }
            )
            sizes["lines"] += batch.num_rows
            sizes["orders"] += len(pc.unique(oid))  # order ids are unique per copy
            items.update(pc.unique(pid).to_pylist())
            yield batch

    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("order_id", pa.string()),
            ("order_time", pa.timestamp("us", tz="UTC")),
            ("product_id", pa.string()),
        ]
    )
    lake = root / "lake"
    write_deltalake(str(lake / "order_lines"), pa.RecordBatchReader.from_batches(schema, chunks()))
    DeltaTable.create(
        str(lake / "events"), schema=events_table.SCHEMA, partition_by=events_table.PARTITION_BY
    )
    return {**sizes, "items": len(items)}


def peak_rss_mb(pid: int | None = None) -> float:
    """High-water resident memory of ``pid`` (this process when None), in MB."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of this process and of ``pids`` (e.g. the JVM), in seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Spark's Python worker daemon and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def run_single(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="kirana-bench-models-", dir=args.work_dir))
    try:
        return _run_single(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_single(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from kirana.config import ModelSettings
    from kirana.models.jobs import embedded
    from kirana.models.jobs.engine import OrdersSource

    started, cpu = time.perf_counter(), cpu_seconds([])
    sizes = make_lake(root, args.users, args.catalogues)
    result: dict[str, Any] = {
        "engine": args.engine,
        "users": args.users,
        "catalogues": args.catalogues,
        **sizes,
        "make_lake_seconds": round(time.perf_counter() - started, 1),
        "make_lake_cpu_seconds": round(cpu_seconds([]) - cpu, 1),
        # high-water RSS once the lake is written (the jobs' peak is reported below)
        "make_lake_rss_mb": round(peak_rss_mb()),
    }
    print(f"lake: {json.dumps(result)}", file=sys.stderr, flush=True)
    source = OrdersSource(root / "lake", extra_tables=("order_lines",))
    neighbours = args.users <= args.neighbour_users
    result["tifu_neighbours"] = neighbours
    jobs: dict[str, Any] = {}
    if args.engine == "embedded":
        if not neighbours:  # benchmark-only: the engine's TIFU-KNN without neighbour search
            embedded.TIFU_PARAMS = {**embedded.TIFU_PARAMS, "n_neighbors": 0, "alpha": 1.0}
        duckdb = {"duckdb_memory_limit": args.duckdb_memory, "duckdb_temp_dir": root / "spill"}
        engines = {
            "cf": embedded.EmbeddedEngine(
                ModelSettings(recommender="ease", evaluate=False), **duckdb
            ),
            "als": embedded.EmbeddedEngine(
                ModelSettings(recommender="als", evaluate=False), **duckdb
            ),
        }
        engine = engines["cf"]
        jobs["buy_again"] = lambda: engine.buy_again(source, k=10)
        jobs["recommended_for_you_ease"] = lambda: engine.recommended_for_you(source, k=10)
        jobs["recommended_for_you_als"] = lambda: engines["als"].recommended_for_you(source, k=10)
    else:
        from kirana.models.jobs.spark_buy_again import BuyAgainParams
        from kirana.models.jobs.spark_engine import SparkEngine

        params = BuyAgainParams() if neighbours else BuyAgainParams(n_neighbors=0, alpha=1.0)
        conf = {"spark.driver.memory": args.driver_memory, **dict(args.conf)}
        engine = SparkEngine(args.master, conf, buy_again_params=params)
        t = time.perf_counter()
        engine.session  # noqa: B018 (start the JVM outside the job timings)
        result["session_start_seconds"] = round(time.perf_counter() - t, 1)
        jobs["buy_again"] = lambda: engine.buy_again(source, k=10)
        jobs["recommended_for_you_als"] = lambda: engine.recommended_for_you(source, k=10)
    jobs["associations"] = lambda: engine.associations(
        source, min_support=args.min_support, min_confidence=0.0, k=10
    )

    def pids() -> list[int]:
        if args.engine != "spark":
            return []
        return [engine.jvm_pid, *descendants(engine.jvm_pid)]

    # wall time is what a user waits; CPU time (this process + JVM + Spark's Python workers)
    # is what the work costs, and stays meaningful on a machine shared with other jobs
    for name in args.jobs.split(",") if args.jobs else list(jobs):
        if name not in jobs:
            continue
        t, cpu = time.perf_counter(), cpu_seconds(pids())
        table = jobs[name]()
        result[f"{name}_seconds"] = round(time.perf_counter() - t, 2)
        result[f"{name}_cpu_seconds"] = round(cpu_seconds(pids()) - cpu, 2)
        result[f"{name}_rows"] = table.num_rows
        result[f"{name}_rss_mb"] = round(peak_rss_mb())  # high-water RSS so far
        wall, cpu = result[f"{name}_seconds"], result[f"{name}_cpu_seconds"]
        print(f"{name}: {wall} s wall, {cpu} s CPU", file=sys.stderr, flush=True)
        # everything so far, so a long run stopped before its end still leaves its figures
        print(f"so far: {json.dumps(result)}", file=sys.stderr, flush=True)
    result["peak_rss_python_mb"] = round(peak_rss_mb())
    if args.engine == "spark":
        jvm = engine.jvm_pid
        result["peak_rss_jvm_mb"] = round(peak_rss_mb(jvm))
        result["peak_rss_workers_mb"] = round(sum(peak_rss_mb(p) for p in descendants(jvm)))
        engine.close()
    result["peak_rss_total_mb"] = sum(v for k, v in result.items() if k.startswith("peak_rss_"))
    return result


def spark_conf_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("spark."):
        raise argparse.ArgumentTypeError(f"expected spark.KEY=VALUE, got {text!r}")
    return key, value


def growth(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Exponent b of time ~ users^b per engine and job (least squares on log-log)."""
    out: dict[str, dict[str, float]] = {}
    for engine in {r["engine"] for r in results}:
        rows = [r for r in results if r["engine"] == engine and r["catalogues"] == 1]
        for key in {k for r in rows for k in r if k.endswith("_seconds") and "lake" not in k}:
            pts = [(r["users"], r[key]) for r in rows if r.get(key)]
            if len({u for u, _ in pts}) >= 2:
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                out.setdefault(engine, {})[key] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="users per run, comma-separated")
    parser.add_argument("--engines", default="embedded,spark")
    parser.add_argument("--catalogues", type=int, default=1, help="copies of the catalogue")
    parser.add_argument("--jobs", default="", help="only these jobs (comma-separated)")
    parser.add_argument("--min-support", type=float, default=0.0005)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument(
        "--conf",
        type=spark_conf_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark setting (repeatable), e.g. spark.sql.shuffle.partitions=32",
    )
    parser.add_argument(
        "--neighbour-users",
        type=int,
        default=NEIGHBOUR_USERS,
        help="above this many users, buy again is TIFU-KNN without neighbours (both engines)",
    )
    parser.add_argument(
        "--duckdb-memory",
        help="embedded: DuckDB's memory limit, e.g. 4GB (default: lake_orders' own)",
    )
    parser.add_argument(
        "--work-dir", type=Path, help="where each size writes its lake and spills (default: tmp)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        result = run_single(args)
        print(json.dumps(result), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    extra = [
        "--catalogues", str(args.catalogues), "--min-support", str(args.min_support),
        "--master", args.master, "--driver-memory", args.driver_memory, "--jobs", args.jobs,
        "--neighbour-users", str(args.neighbour_users),
        *(arg for key, value in args.conf for arg in ("--conf", f"{key}={value}")),
    ]  # fmt: skip
    if args.duckdb_memory:
        extra += ["--duckdb-memory", args.duckdb_memory]
    if args.work_dir:
        extra += ["--work-dir", str(args.work_dir)]
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for engine in args.engines.split(","):
        results += run_each_size(__file__, "--users", sizes, [*extra, "--engine", engine])
    summary = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "growth_exponents": growth(results),
        "results": results,
    }
    print(json.dumps(summary["growth_exponents"]))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
