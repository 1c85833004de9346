"""Full and incremental refresh of 20 computed traits and 20 audiences, by size.

Builds a synthetic population straight into the lake (Delta ``events``) and
the profile store (identities and traits), ``--events-per-profile`` events
each (10 by default: 10x as many events as profiles), defines 20 computed
traits and 20 audiences, then times a full refresh and an incremental one
after 1% of profiles get new events. Each size runs in its own process so
peak memory belongs to that size.

    python benchmarks/segments_refresh.py --profiles 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from _harness import run_each_size
from kirana.identity.sqlite_store import SQLiteProfileStore
from kirana.lake import events_table
from kirana.profiles import segments_service
from kirana.profiles.refresh import SegmentRefresher

NOW = datetime.now(UTC)
EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Promotion Viewed"]
DEPARTMENTS = ["produce", "dairy", "bakery", "frozen", "snacks", "beverages", "pantry"]


def traits() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for event in EVENTS:
        slug = event.lower().replace(" ", "_")
        out[f"{slug}_count"] = {"aggregation": "count", "event": event}
        out[f"{slug}_30d"] = {"aggregation": "count", "event": event, "window_days": 30}
        out[f"{slug}_last"] = {"aggregation": "days_since_last", "event": event}
    out["spend"] = {"aggregation": "sum", "event": "Order Completed", "property": "total"}
    out["max_order"] = {"aggregation": "max", "event": "Order Completed", "property": "total"}
    out["min_order"] = {"aggregation": "min", "event": "Order Completed", "property": "total"}
    out["fav_department"] = {"aggregation": "most_frequent", "property": "department"}
    out["departments"] = {"aggregation": "distinct_count", "property": "department"}
    out["first_department"] = {"aggregation": "first", "property": "department"}
    out["last_department"] = {"aggregation": "last", "property": "department"}
    out["big_orders"] = {
        "aggregation": "count",
        "event": "Order Completed",
        "where": [{"property": "total", "op": "gte", "value": 50}],
    }
    return out


def audiences() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i, dept in enumerate(DEPARTMENTS):
        out[f"fav_{dept}"] = {
            "conditions": {"computed_trait": "fav_department", "op": "eq", "value": dept}
        }
        out[f"active_{i}"] = {
            "conditions": {"event": EVENTS[i % 4], "at_least": 1 + i % 3, "within_days": 7 + 7 * i}
        }
    out["spenders"] = {"conditions": {"computed_trait": "spend", "op": "gte", "value": 100}}
    out["gold"] = {"conditions": {"trait": "plan", "op": "eq", "value": "gold"}}
    out["gold_spenders"] = {"conditions": {"and": [{"audience": "gold"}, {"audience": "spenders"}]}}
    out["abandoners"] = {
        "conditions": {
            "event": "Product Added",
            "not_followed_by": "Order Completed",
            "within_hours": 24,
            "lookback_days": 14,
        }
    }
    out["not_gold"] = {"conditions": {"not": {"audience": "gold"}}}
    out["sql_top"] = {
        "sql": "SELECT profile_id FROM computed_traits WHERE name = 'spend' "
        "AND TRY_CAST(value AS DOUBLE) > 200"
    }
    return out


def events_table_for(profile_ids: np.ndarray, per_profile: int, rng, offset0: int) -> pa.Table:
    n = len(profile_ids) * per_profile
    users = np.repeat(profile_ids, per_profile)
    names = np.array(EVENTS)[rng.integers(0, 4, n)]
    seconds = rng.integers(0, 60 * 86400, n)
    ts = np.datetime64(NOW.replace(tzinfo=None), "us") - seconds.astype("timedelta64[s]").astype(
        "timedelta64[us]"
    )
    totals = np.round(rng.gamma(2.0, 30.0, n), 2)
    depts = np.array(DEPARTMENTS)[rng.integers(0, len(DEPARTMENTS), n)]
    props = [f'{{"total":{t},"department":"{d}"}}' for t, d in zip(totals, depts, strict=True)]
    offsets = np.arange(offset0, offset0 + n, dtype=np.int64)
    timestamp = pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    columns = {f.name: pa.nulls(n, f.type) for f in events_table.SCHEMA}
    columns.update(
        {
            "message_id": pa.array([f"m{o}" for o in offsets]),
            "type": pa.array(np.full(n, "track")),
            "event": pa.array(names),
            "user_id": pa.array([f"u{u}" for u in users]),
            "timestamp": timestamp,
            "received_at": timestamp,
            "properties": pa.array(props),
            "log_offset": pa.array(offsets),
            "event_date": timestamp.cast(pa.date32()),
        }
    )
    return pa.table(columns, schema=events_table.SCHEMA)


def run(profiles: int, per_profile: int) -> dict:
    rng = np.random.default_rng(1)
    data = Path(tempfile.mkdtemp(prefix="kirana-segbench-"))
    lake = data / "lake"
    store = SQLiteProfileStore(data / "profiles.sqlite")
    t0 = time.perf_counter()
    ids = np.arange(profiles)
    for start in range(0, profiles, 200_000):
        chunk = ids[start : start + 200_000]
        write_deltalake(
            lake / "events",
            events_table_for(chunk, per_profile, rng, start * per_profile),
            mode="append",
            partition_by=events_table.PARTITION_BY,
        )
    with store.transaction():
        store._many(
            "INSERT INTO identities VALUES (?, ?, ?)", [("user_id", f"u{i}", f"p{i}") for i in ids]
        )
        store._many(
            "INSERT INTO identity_traits VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    "user_id",
                    f"u{i}",
                    "plan",
                    '"gold"' if i % 5 == 0 else '"free"',
                    "2026-01-01T00:00:00+00:00",
                    f"t{i}",
                )
                for i in ids
            ],
        )
    build = time.perf_counter() - t0
    for name, body in traits().items():
        segments_service.save(store, "computed_trait", name, body)
    for name, body in audiences().items():
        segments_service.save(store, "audience", name, body)
    emitted: list[int] = []
    refresher = SegmentRefresher(store, lake, lambda events: emitted.append(len(events)))
    t1 = time.perf_counter()
    full = refresher.refresh(full=True)
    t_full = time.perf_counter() - t1
    touched = rng.choice(ids, max(1, profiles // 100), replace=False)
    write_deltalake(
        lake / "events",
        events_table_for(touched, 2, rng, profiles * per_profile + 1),
        mode="append",
        partition_by=events_table.PARTITION_BY,
    )
    t2 = time.perf_counter()
    incremental = refresher.refresh()
    t_inc = time.perf_counter() - t2
    return {
        "profiles": profiles,
        "events": profiles * per_profile,
        "traits": len(full.traits),
        "audiences": len(full.audiences),
        "build_seconds": round(build, 1),
        "full_refresh_seconds": round(t_full, 1),
        "incremental_profiles": incremental.profiles_considered,
        "incremental_refresh_seconds": round(t_inc, 2),
        "audience_events_emitted": sum(emitted),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--events-per-profile", type=int, default=10)
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run(args.profiles[0], args.events_per_profile)))
        return
    print(f"# {time.strftime('%Y-%m-%d')} · {os.cpu_count()} cores")
    results = run_each_size(
        __file__,
        "--profiles",
        args.profiles,
        ["--events-per-profile", str(args.events_per_profile)],
    )
    base = results[0]
    for r in results[1:]:
        print(
            f"{r['profiles'] / base['profiles']:.0f}x profiles -> "
            f"{r['full_refresh_seconds'] / base['full_refresh_seconds']:.1f}x full refresh time"
        )


if __name__ == "__main__":
    main()
