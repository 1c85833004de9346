"""Replication throughput and lag from PostgreSQL and MariaDB into the lake.

Starts its own servers (as the tests do), then for each database:

1. **baseline**: read the table raw (PostgreSQL ``COPY … TO STDOUT``, MariaDB a
   streaming ``SELECT``), rows/s: the most any snapshot could do;
2. **snapshot**: Kirana's first sync of the same table into Delta, rows/s and its
   ratio to the baseline;
3. **streaming, burst**: a writer inserts (and updates one row) as fast as it can
   in transactions of ``--burst-per-tx`` rows while ``sync --follow`` applies
   them; rows/s applied, and how long the lake takes to catch up afterwards;
4. **streaming, steady**: the writer holds a fixed rate; lag (seconds behind:
   apply time minus source commit time of the newest change) p50 / p95 / max.

Usage: ``python benchmarks/replication.py [--rows 200000] [--stream-rows 40000]
[--rate 1000] [--seconds 10] [--only postgres|mariadb]``. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# pyarrow imports pandas lazily on first use; import it up front so that one-time cost
# (seconds where no bytecode cache is written) does not land in the first measurement
import pandas  # noqa: F401
from tests.replication.conftest import running_mariadb, running_postgres

from kirana.replication.specs import parse_source_config
from kirana.replication.state import ReplicationState
from kirana.replication.sync import Replicator, SyncReport


class Postgres:
    name = "postgres"

    def __init__(self, server) -> None:
        import psycopg2

        self.server = server
        self.conn = psycopg2.connect(server.dsn)
        self.conn.autocommit = True
        self.definition = {"kind": "postgres", "dsn": server.dsn, "tables": [{"name": "orders"}]}

    def load(self, rows: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, user_id text, product_id int,"
                " amount numeric(10,2), status text, created_at timestamptz)"
            )
            cur.execute(
                "INSERT INTO orders SELECT g, 'u' || (g %% 5000), g %% 14000, (g %% 997) / 10.0,"
                " 'placed', now() FROM generate_series(1, %s) g",
                (rows,),
            )

    def baseline(self) -> int:
        class Sink:
            def write(self, data: bytes) -> int:
                return len(data)

        with self.conn.cursor() as cur:
            cur.copy_expert("COPY (SELECT * FROM orders) TO STDOUT WITH (FORMAT csv)", Sink())
            return cur.rowcount

    def write(self, first_id: int, count: int, per_tx: int) -> None:
        with self.conn.cursor() as cur:
            for start in range(first_id, first_id + count, per_tx):
                end = min(start + per_tx, first_id + count)
                cur.execute("BEGIN")
                cur.execute(
                    "INSERT INTO orders SELECT g, 'u' || (g %% 5000), g %% 14000, 1.5, 'placed',"
                    " now() FROM generate_series(%s, %s) g",
                    (start, end - 1),
                )
                cur.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (start - 1,))
                cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class MariaDB:
    name = "mariadb"

    def __init__(self, server) -> None:
        self.server = server
        self.conn = server.connect("kirana")
        self.definition = {"kind": "mysql", "dsn": server.url, "tables": [{"name": "orders"}]}

    def load(self, rows: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id VARCHAR(20), product_id INT,"
                " amount DECIMAL(10,2), status VARCHAR(10), created_at DATETIME(6))"
            )
            cur.execute(
                "INSERT INTO orders SELECT seq, CONCAT('u', seq % 5000), seq % 14000,"
                f" (seq % 997) / 10.0, 'placed', NOW(6) FROM seq_1_to_{rows}"
            )

    def baseline(self) -> int:
        import pymysql.cursors

        cur = self.conn.cursor(pymysql.cursors.SSCursor)
        cur.execute("SELECT * FROM orders")
        count = 0
        while batch := cur.fetchmany(20_000):
            count += len(batch)
        cur.close()
        return count

    def write(self, first_id: int, count: int, per_tx: int) -> None:
        with self.conn.cursor() as cur:
            for start in range(first_id, first_id + count, per_tx):
                end = min(start + per_tx, first_id + count)
                cur.execute("BEGIN")
                cur.execute(
                    "INSERT INTO orders SELECT seq, CONCAT('u', seq % 5000), seq % 14000, 1.5,"
                    f" 'placed', NOW(6) FROM seq_{start}_to_{end - 1}"
                )
                cur.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (start - 1,))
                cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def measure(
    db, rows: int, stream_rows: int, burst_per_tx: int, rate: int, seconds: float, per_tx: int
) -> dict:
    db.load(rows)
    base_seconds, counted = _timed(db.baseline)
    work = Path(tempfile.mkdtemp(prefix="kirana-bench-repl-"))
    state = ReplicationState(work / "state")
    config = parse_source_config({**db.definition, "name": "bench"})
    state.add(config)
    replicator = Replicator(config, work / "lake", state, max_rows=50_000, wait_seconds=0.2)
    snapshot = replicator.run()
    result = {
        "database": db.name,
        "snapshot_rows": snapshot.snapshot_rows,
        "baseline_rows_per_s": round(counted / base_seconds),
        "snapshot_rows_per_s": round(snapshot.snapshot_rows / snapshot.seconds),
        "snapshot_vs_baseline": round(
            (snapshot.snapshot_rows / snapshot.seconds) / (counted / base_seconds), 3
        ),
    }

    # saturated streaming: writer as fast as it can, follower applies
    lags: list[float] = []
    applied = {"rows": 0}

    def on_batch(report: SyncReport) -> None:
        applied["rows"] = report.rows
        if report.lag_seconds is not None:
            lags.append(report.lag_seconds)

    stop = threading.Event()
    follower = threading.Thread(
        target=lambda: replicator.run(follow=True, stop=stop, on_batch=on_batch)
    )
    follower.start()
    started = time.perf_counter()
    db.write(rows + 1, stream_rows, burst_per_tx)
    written = time.perf_counter() - started
    changes = stream_rows + stream_rows // burst_per_tx  # inserts, one update per transaction
    while applied["rows"] < changes:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    result.update(
        {
            "stream_changes": changes,
            "stream_write_rows_per_s": round(changes / written),
            "stream_apply_rows_per_s": round(changes / elapsed),
            "stream_catch_up_after_writer_s": round(elapsed - written, 2),
            "stream_lag_max_s": round(max(lags), 2) if lags else None,
        }
    )

    # steady rate: lag when the writer is not saturating anything
    lags.clear()
    before = applied["rows"]
    first = rows + stream_rows + 1  # right after: the first update hits the last streamed row
    per_second = max(1, rate // per_tx)
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        db.write(first + sent, per_tx, per_tx)
        sent += per_tx
        pause = t0 + (sent / per_tx) / per_second - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    target = before + sent + sent // per_tx
    while applied["rows"] < target:
        time.sleep(0.01)
    stop.set()
    follower.join()
    ordered = sorted(lags)
    result.update(
        {
            "steady_rate_rows_per_s": round(sent / seconds),
            "steady_lag_p50_s": round(statistics.median(ordered), 3) if ordered else None,
            "steady_lag_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3)
            if ordered
            else None,
            "steady_lag_max_s": round(ordered[-1], 3) if ordered else None,
            "steady_batches": len(ordered),
        }
    )
    state.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="snapshot table size")
    parser.add_argument(
        "--stream-rows", type=int, default=40_000, help="rows inserted while streaming"
    )
    parser.add_argument("--burst-per-tx", type=int, default=200, help="rows per burst transaction")
    parser.add_argument("--per-tx", type=int, default=10, help="rows per steady transaction")
    parser.add_argument("--rate", type=int, default=1_000, help="steady insert rate, rows/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady phase length")
    parser.add_argument("--only", choices=["postgres", "mariadb"], help="one database only")
    args = parser.parse_args()
    servers = [("postgres", running_postgres, Postgres), ("mariadb", running_mariadb, MariaDB)]
    for name, running, client in servers:
        if args.only and args.only != name:
            continue
        with running() as server:
            db = client(server)
            try:
                result = measure(
                    db,
                    args.rows,
                    args.stream_rows,
                    args.burst_per_tx,
                    args.rate,
                    args.seconds,
                    args.per_tx,
                )
            finally:
                db.close()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
