"""Erasing K people one by one against erasing them in one batch, on the same data.

An erasure's cost is its full passes: one read of the event log, one file-level rewrite of
the ``events`` table (and of every other Delta table holding them), one VACUUM of each
SQLite store. One by one pays each pass K times; a batch (``Platform.erase_many``, what
``POST /v1/privacy/erasures/batch`` and ``kirana privacy delete A B ...`` call) pays each
once. The data dir is built once (``--users`` customers, five events each, through the real
log and consumers), copied, and each copy is erased one way.

    .venv/bin/python benchmarks/erasure_batch.py --users 20000 --people 10 50

Prints one JSON line per K.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kirana.collect.normalize import normalize
from kirana.collect.schema import event_decoder
from kirana.config import load_settings
from kirana.eventlog.records import event_record
from kirana.privacy.targets import ErasureTarget
from kirana.runtime import Platform


def customer_events(n: int) -> list[dict]:
    user, anon = f"user-{n:07d}", f"anon-{n:07d}"
    return [
        {"type": "page", "anonymousId": anon, "name": "Home"},
        {"type": "identify", "anonymousId": anon, "userId": user,
         "traits": {"email": f"c{n}@example.com", "plan": "basic"}},
        {"type": "track", "userId": user, "event": "Product Viewed",
         "properties": {"product_id": f"p{n % 500}"}},
        {"type": "track", "userId": user, "event": "Product Added",
         "properties": {"product_id": f"p{n % 500}"}},
        {"type": "track", "userId": user, "event": "Order Completed",
         "properties": {"order_id": f"o{n}", "total": 10.0}},
    ]  # fmt: skip


def build(data_dir: Path, users: int) -> float:
    """Load every customer's events through the log and consumers; returns seconds."""
    settings = load_settings(data_dir, lake={"linger_seconds": 0.2})
    platform = Platform.open(settings)
    platform.start()
    started = time.perf_counter()
    now = datetime.now(UTC)
    try:
        for first in range(0, users, 2_000):
            records = [
                event_record(
                    normalize(
                        event_decoder.decode(json.dumps(e).encode()), received_at=now, source_id="s"
                    )
                )
                for n in range(first, min(users, first + 2_000))
                for e in customer_events(n)
            ]
            platform.log.append_sync(records)
        assert platform.drain(timeout=3_600), "consumers did not catch up"
    finally:
        platform.close()
    return time.perf_counter() - started


def erase(data_dir: Path, people: list[int], batch: bool) -> tuple[float, dict[str, int]]:
    platform = Platform.open(load_settings(data_dir, lake={"linger_seconds": 0.2}))
    platform.start()
    try:
        started = time.perf_counter()
        rewrites: dict[str, int] = {}
        if batch:
            targets = [ErasureTarget(f"user-{n:07d}", "user_id") for n in people]
            report = platform.erase_many(targets)
            assert report.lake_rows_deleted == 5 * len(people)
            rewrites = report.rewrites
        else:
            for n in people:
                report = platform.erase(("user_id", f"user-{n:07d}"))
                assert report.lake_rows_deleted == 5
                for key, count in report.rewrites.items():
                    rewrites[key] = rewrites.get(key, 0) + count
        return time.perf_counter() - started, rewrites
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--people", type=int, nargs="*", default=[10, 50])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kirana-erasure-") as root:
        base = Path(root) / "base"
        load_s = build(base, args.users)
        size_mb = sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) / 2**20
        for k in args.people:
            people = list(range(0, args.users, max(1, args.users // k)))[:k]
            timings = {}
            for mode in ("one_by_one", "batch"):
                copy = Path(root) / mode
                shutil.copytree(base, copy)
                timings[mode], rewrites = erase(copy, people, batch=mode == "batch")
                timings[f"{mode}_rewrites"] = sum(rewrites.values())
                shutil.rmtree(copy)
            line = {
                "users": args.users,
                "events": 5 * args.users,
                "data_mb": round(size_mb, 1),
                "load_s": round(load_s, 1),
                "people": k,
                "one_by_one_s": round(timings["one_by_one"], 2),
                "batch_s": round(timings["batch"], 2),
                "speedup": round(timings["one_by_one"] / timings["batch"], 1),
                "one_by_one_rewrites": timings["one_by_one_rewrites"],
                "batch_rewrites": timings["batch_rewrites"],
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
