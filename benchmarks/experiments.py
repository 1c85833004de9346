"""Experiment analysis time by exposed users x metrics, and assignment throughput.

Analysis (the embedded path): DuckDB writes a synthetic ``events`` table straight to Parquet
(one exposure per user over 14 days, a pre-period, and views, cart adds, checkouts and orders
with revenue; a planted +3% order effect), which becomes a Delta table in place
(``convert_to_deltalake``). Then the experiment report - 20 metrics (binomial, count, sum,
capped sum, filtered count, ratio), CUPED pre-period, dimensions, cumulative series - runs
through :func:`kirana.experiments.analyse.report` on ``kirana.lake.catalog.connect``. The
baseline is one plain DuckDB scan of the same columns, so ``analysis / scan`` says how many
"reads of the data" the analysis costs. Each size runs in its own process (peak RSS per size).

Assignment: in-process ``Assigner.assign`` over 10 running experiments (pure) against the raw
hash as baseline; ``assign_for_user`` with exposure logging to a real fsync'd event log (new
users, then repeat users); and ``POST /v1/experiments/assign`` on ``kirana serve`` from another
process's client threads, against ``GET /health`` on the same server as baseline.

    python benchmarks/experiments.py --users 1000000 10000000 --metrics 20
    python benchmarks/experiments.py --skip-analysis            # assignment only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from _harness import ServerUnderTest, run_each_size

START = datetime(2026, 1, 1, tzinfo=UTC)
MEMORY_MB = 4096
DAYS = 14
CATEGORIES = "['produce', 'dairy', 'bakery', 'frozen', 'snacks', 'beverages']"
EVENTS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]


def _metrics(count: int) -> list[dict]:
    """``count`` metric definitions cycling through every metric kind Kirana supports."""
    out: list[dict] = []
    for event in EVENTS:
        slug = event.lower().replace(" ", "_")
        out.append({"key": f"{slug}_any", "type": "binomial", "event": event, "window_hours": 72})
        out.append({"key": f"{slug}_count", "type": "count", "event": event, "window_hours": 168})
    out += [
        {
            "key": "revenue",
            "type": "sum",
            "event": "Order Completed",
            "value": ["revenue", "total"],
        },
        {
            "key": "revenue_capped",
            "type": "sum",
            "event": "Order Completed",
            "value": "revenue",
            "cap": {"type": "percentile", "value": 0.99},
        },
        {
            "key": "revenue_abs_cap",
            "type": "sum",
            "event": "Order Completed",
            "value": "revenue",
            "cap": {"type": "absolute", "value": 200},
        },
        {
            "key": "aov",
            "type": "ratio",
            "event": "Order Completed",
            "value": "revenue",
            "denominator_event": "Order Completed",
            "guardrail": True,
        },
        {
            "key": "items_per_order",
            "type": "ratio",
            "event": "Order Completed",
            "value": "items",
            "denominator_event": "Order Completed",
        },
        {
            "key": "conversion_per_view",
            "type": "ratio",
            "event": "Order Completed",
            "value": "revenue",
            "denominator_event": "Product Viewed",
        },
    ]
    for category in ("produce", "dairy", "bakery", "frozen", "snacks", "beverages"):
        out.append(
            {
                "key": f"{category}_views",
                "type": "count",
                "event": "Product Viewed",
                "filter": {"category": category},
            }
        )
    if count > len(out):
        raise SystemExit(f"--metrics: at most {len(out)}")
    return out[:count]


def _generate(lake: Path, users: int, signed_in_later: float = 0.0) -> int:
    """Generate the events with DuckDB and append them to a Delta table, a million users at a
    time (bounded memory, progress on stderr; no Python rows). A ``signed_in_later`` share of
    the users is exposed under an anonymous id and signs in an hour later (a ``Signed In``
    event with both ids); their other events carry both ids, as Segment's libraries send
    them: the analysis must join them to their orders."""
    import duckdb
    from deltalake import DeltaTable, write_deltalake

    table = lake / "events"
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
    span_us = DAYS * 86_400_000_000
    # u(): a deterministic uniform in [0, 1) from the user and a salt
    conn.execute("CREATE MACRO u(i, salt) AS (hash(i, salt) % 1000000) / 1000000.0")
    query = f"""
          WITH users AS (
            SELECT i, 'u' || i AS uid,
                   TIMESTAMPTZ '{START.isoformat()}'
                     + to_microseconds(CAST(u(i, 'start') * {span_us} AS BIGINT)) AS t0,
                   CASE WHEN u(i, 'arm') < 0.5 THEN 'control' ELSE 'treatment' END AS v,
                   CASE WHEN u(i, 'os') < 0.5 THEN 'ios' ELSE 'android' END AS os,
                   u(i, 'anonymous') < $signed_in_later AS anonymous
            FROM range($lo, $hi) t(i)
          ),
          spec AS (
            SELECT * FROM (VALUES ('Product Viewed', 0.75), ('Product Added', 0.5),
                                  ('Checkout Started', 0.3), ('Order Completed', 0.25)) s(event, q)
          ),
          activity AS (
            SELECT users.*, spec.event, k,
                   u(i, spec.event || k) AS r
            FROM users, spec,
                 LATERAL unnest(range(CAST(floor(ln(1 - u(i, spec.event) * 0.999)
                     / ln(spec.q + CASE WHEN users.v = 'treatment'
                                         AND spec.event = 'Order Completed'
                                         THEN 0.0075 ELSE 0 END)) AS BIGINT))) AS t(k)
          )
          SELECT 'Experiment Viewed' AS event,
                 CASE WHEN anonymous THEN NULL ELSE uid END AS user_id,
                 CASE WHEN anonymous THEN 'a' || i END AS anonymous_id,
                 t0 AS timestamp,
                 '{{"experiment_id":"bench","variation_id":"' || v || '"}}' AS properties,
                 '{{"device":{{"type":"' || os || '"}}}}' AS context
          FROM users
          UNION ALL
          SELECT 'Signed In', uid, 'a' || i, t0 + INTERVAL 1 HOUR, '{{}}', '{{}}'
          FROM users WHERE anonymous
          UNION ALL
          SELECT event, uid, CASE WHEN anonymous THEN 'a' || i END,
                 t0 + to_microseconds(CAST((r * 12 - 4) * 86400e6 AS BIGINT)),
                 CASE event
                   WHEN 'Order Completed' THEN '{{"revenue":' || round(10 + 90 * r * r, 2)
                        || ',"items":' || (1 + k + CAST(r * 8 AS INT)) || '}}'
                   ELSE '{{"category":"' || {CATEGORIES}[1 + CAST(r * 6 AS INT) % 6] || '"}}'
                 END,
                 '{{}}'
          FROM activity
        """
    chunk = 1_000_000
    for lo in range(0, users, chunk):
        hi = min(users, lo + chunk)
        params = {"lo": lo, "hi": hi, "signed_in_later": signed_in_later}
        batch = conn.execute(query, params).to_arrow_table()
        write_deltalake(str(table), batch, mode="append")
        print(f"generated users {hi:,}/{users:,}", file=sys.stderr, flush=True)
    conn.close()
    return int(DeltaTable(str(table)).to_pyarrow_dataset().count_rows())


def single_analysis(users: int, metrics: int, signed_in_later: float = 0.0) -> dict:
    from kirana.experiments.metric_sql import query_sufficient_stats
    from kirana.experiments.reports import build_report
    from kirana.experiments.service import ExperimentService
    from kirana.experiments.store import ExperimentStore
    from kirana.lake.catalog import connect

    work = Path(tempfile.mkdtemp(prefix="kirana-bench-exp-"))
    try:
        t0 = time.perf_counter()
        rows = _generate(work / "lake", users, signed_in_later)
        generate_s = time.perf_counter() - t0
        service = ExperimentService(ExperimentStore(work / "experiments.sqlite"))
        definitions = _metrics(metrics)
        for m in definitions:
            service.put_metric(m)
        service.create(
            {
                "key": "bench",
                "variations": [{"key": "control"}, {"key": "treatment"}],
                "metrics": [m["key"] for m in definitions],
                "analysis": {"lookback_days": 7},
            }
        )
        service.start("bench")
        # analyse the synthetic period: pretend the experiment ran over it
        record = service.experiment("bench")
        import msgspec

        service.store.put(
            "experiment",
            "bench",
            msgspec.structs.replace(record, started_at=START).to_json(),
        )
        conn = connect(work / "lake")
        t0, c0 = time.perf_counter(), time.process_time()
        conn.execute(
            "SELECT count(*), sum(length(properties)), count(DISTINCT user_id) FROM events"
        ).fetchone()
        scan_s, scan_cpu = time.perf_counter() - t0, time.process_time() - c0
        conn.close()
        # analyse.report() is query_sufficient_stats + build_report; timed apart here
        conn = connect(work / "lake")
        conn.execute(f"SET memory_limit = '{MEMORY_MB}MB'")  # the default analysis_memory_mb
        conn.execute("SET temp_directory = ?", [str(work / "duckdb-tmp")])
        record = service.experiment("bench")
        metric_defs = [service.metric(m) for m in record.metrics]
        end = START + timedelta(days=DAYS + 7)
        t0, c0 = time.perf_counter(), time.process_time()
        rows_out = query_sufficient_stats(
            conn, "bench", metric_defs, start=START, end=end, lookback_days=7
        )
        sql_s, sql_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        report = build_report(
            record, metric_defs, rows_out, start=START, end=end, analysed_at=datetime.now(UTC)
        )
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        conn.close()
        analysis_s = sql_s + build_s
        orders = next(r for r in report["summary"] if r["metric"] == "order_completed_count")
        return {
            "users": users,
            "metrics": metrics,
            "signed_in_later": signed_in_later,
            "event_rows": rows,
            "generate_s": round(generate_s, 1),
            "scan_s": round(scan_s, 2),
            "scan_cpu_s": round(scan_cpu, 2),
            "sql_s": round(sql_s, 2),
            "sql_cpu_s": round(sql_cpu, 2),
            "report_build_s": round(build_s, 2),
            "report_build_cpu_s": round(build_cpu, 2),
            "analysis_s": round(analysis_s, 2),
            "analysis_over_scan": round(analysis_s / scan_s, 1),
            "sql_cpu_over_scan_cpu": round(sql_cpu / scan_cpu, 1),
            "exposed_users_reported": sum(v["users"] for v in report["variations"]),
            "orders_lift": round(orders["relative_lift"], 4),
            "orders_ci": [round(x, 4) for x in orders["relative_ci"]],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _experiments() -> list[dict]:
    arms = [{"key": "control"}, {"key": "treatment"}]
    out = [
        {"key": f"exp-{i}", "variations": arms, "coverage": 0.8, "seed": f"s{i}"} for i in range(6)
    ]
    out += [
        {"key": f"ns-{i}", "variations": arms, "namespace": ["layer", i / 4, (i + 1) / 4]}
        for i in range(4)
    ]
    return out


def assignment_in_process(seconds: float) -> dict:
    from kirana.config import load_settings
    from kirana.experiments.assignment import gb_hash
    from kirana.experiments.platform import assign_for_user, experiments
    from kirana.runtime import Platform

    data = Path(tempfile.mkdtemp(prefix="kirana-bench-assign-"))
    platform = Platform.open(load_settings(data))
    try:
        service = experiments(platform).service
        for body in _experiments():
            service.create(body)
            service.start(body["key"])
        assigner = experiments(platform).assigner

        def rate(fn, limit: float) -> float:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < limit:
                fn(n)
                n += 1
            return n / (time.perf_counter() - t0)

        hash_rate = rate(lambda i: gb_hash("seed", f"user-{i}", 2), seconds)
        pure = rate(lambda i: assigner.assign({"id": f"user-{i}"}), seconds)
        per_user = sum(len(assigner.assign({"id": f"user-{i}"})) for i in range(1000)) / 1000
        new = rate(lambda i: assign_for_user(platform, user_id=f"new-{i}"), seconds)
        repeat = rate(lambda i: assign_for_user(platform, user_id=f"new-{i % 500}"), seconds)
        return {
            "experiments_running": len(_experiments()),
            "hash_per_s": round(hash_rate),
            "users_per_s_pure": round(pure),
            "assignments_per_s_pure": round(pure * per_user),
            "hashes_per_user": round(hash_rate / pure, 1),
            "users_per_s_logging_new": round(new),
            "users_per_s_logging_repeat": round(repeat),
        }
    finally:
        platform.close()
        shutil.rmtree(data, ignore_errors=True)


def _drive(url: str, path: str, body_for, threads: int, seconds: float, headers: dict) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            n = 0
            while time.perf_counter() < stop:
                body = body_for(k, n)
                r = client.post(path, json=body) if body is not None else client.get(path)
                r.raise_for_status()
                n += 1
            done[k] = n

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / (time.perf_counter() - t0)


def assignment_api(seconds: float, threads: int, rounds: int = 3) -> dict:
    sut = ServerUnderTest("kirana-bench-assign-api-")
    try:
        admin = {"Authorization": f"Bearer {sut.admin_token}"}
        with httpx.Client(base_url=sut.url, headers=admin) as client:
            for body in _experiments():
                client.post("/v1/experiments", json=body).raise_for_status()
                client.post(f"/v1/experiments/{body['key']}/start").raise_for_status()
        key = {"X-Write-Key": sut.write_key}
        with httpx.Client(base_url=sut.url, headers=key) as client:  # repeat users' first visit
            for k in range(threads):
                for n in range(50):
                    client.post("/v1/experiments/assign", json={"userId": f"r{k}-{n}"})
        assign = "/v1/experiments/assign"
        phases = {
            "health": ("/health", lambda k, n, r: None, {}),
            "dry": (assign, lambda k, n, r: {"userId": f"d{r}-{k}-{n}", "log": False}, key),
            "repeat": (assign, lambda k, n, r: {"userId": f"r{k}-{n % 50}"}, key),
            "new": (assign, lambda k, n, r: {"userId": f"n{r}-{k}-{n}"}, key),
        }
        best = dict.fromkeys(phases, 0.0)
        for r in range(rounds):  # interleaved rounds, best of each: the machine is shared
            for name, (path, body, headers) in phases.items():
                rate = _drive(
                    sut.url, path, lambda k, n, b=body, r=r: b(k, n, r), threads, seconds, headers
                )
                best[name] = max(best[name], rate)
        health, dry, repeat, new = (best[k] for k in ("health", "dry", "repeat", "new"))
        return {
            "client_threads": threads,
            "rounds": rounds,
            "health_req_per_s": round(health),
            "assign_req_per_s_no_logging": round(dry),
            "assign_req_per_s_repeat_users": round(repeat),
            "assign_req_per_s_new_users": round(new),
            "no_logging_over_health": round(dry / health, 2),
        }
    finally:
        sut.stop()
        shutil.rmtree(sut.data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="per assignment phase")
    parser.add_argument("--threads", type=int, default=8, help="API client threads")
    parser.add_argument(
        "--signed-in-later",
        type=float,
        default=0.0,
        help="share of users exposed anonymously who sign in an hour later",
    )
    parser.add_argument("--skip-analysis", action="store_true")
    parser.add_argument("--skip-assignment", action="store_true")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(
            json.dumps(single_analysis(args.users[0], args.metrics, args.signed_in_later)),
            flush=True,
        )
        return
    machine = {"cpus": os.cpu_count(), "date": datetime.now(UTC).date().isoformat()}
    print(json.dumps({"machine": machine}), flush=True)
    if not args.skip_analysis:
        extra = ["--metrics", str(args.metrics), "--signed-in-later", str(args.signed_in_later)]
        run_each_size(__file__, "--users", args.users, extra)
    if not args.skip_assignment:
        print(json.dumps({"in_process": assignment_in_process(args.seconds)}), flush=True)
        print(json.dumps({"api": assignment_api(args.seconds, args.threads)}), flush=True)


if __name__ == "__main__":
    main()
