"""Profile reads with their latest events: by active days against a scan of the lake.

Run against a data dir holding the demo (``kirana serve --demo``, left running or not):

    python benchmarks/profile_read.py --data-dir ./kirana-data [--url URL --token TOKEN]

In one process, for the same random users, it times ``find_profile`` (identities,
traits, audiences and the 20 latest events, read by the days the profile was active)
and, as the baseline, the same events read the way Kirana read them before the
``identity_event_days`` index: a DuckDB connection over every lake table and one query
over the whole ``events`` table. With ``--url`` it also times ``GET /v1/profiles/{id}``
on the running server. Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import httpx

from kirana.config import load_settings
from kirana.lake.catalog import connect
from kirana.profiles.view import find_profile
from kirana.runtime import open_profile_store


def full_scan_baseline(lake_dir: Path, users: list[str], anons: list[str], limit: int) -> list:
    """The timeline as read before the day index (kept here only to measure against)."""
    conn = connect(lake_dir)
    return conn.execute(
        "SELECT message_id, type, event, name, user_id, anonymous_id, timestamp, properties "
        "FROM events WHERE list_contains($users, user_id) "
        "OR (user_id IS NULL AND list_contains($anons, anonymous_id)) "
        "ORDER BY timestamp DESC, message_id LIMIT $limit",
        {"users": users, "anons": anons, "limit": limit},
    ).fetchall()


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):7.1f} ms  p99 {p99:7.1f} ms  max {ms[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--users", type=int, default=200, help="profiles to read")
    parser.add_argument("--baseline-users", type=int, default=30, help="of them, by full scan")
    parser.add_argument("--url", help="a running kirana serve on that data dir")
    parser.add_argument("--token", help="a viewer or admin token for --url")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    settings = load_settings(args.data_dir)
    store = open_profile_store(settings)
    lake = settings.lake_dir
    user_ids = [
        r[0] for r in connect(lake).sql("SELECT DISTINCT user_id FROM events").fetchall() if r[0]
    ]
    rng = random.Random(args.seed)
    sample = rng.sample(user_ids, min(args.users, len(user_ids)))
    events = 0
    lake_rows = connect(lake).sql("SELECT count(*) FROM events").fetchall()[0][0]
    print(f"{len(user_ids)} users, {lake_rows:,} events in the lake; reading {len(sample)}")

    find_profile(store, lake, sample[0], "user_id", 20)  # warm the table state, as a server is
    by_days = []
    for user in sample:
        start = time.perf_counter()
        view = find_profile(store, lake, user, "user_id", 20)
        by_days.append(time.perf_counter() - start)
        events += len(view.latest_events) if view else 0
    print(f"by active days, whole profile ({events} events): {percentiles(by_days)}")

    scans = []
    for user in sample[: args.baseline_users]:
        profile = store.profile(("user_id", user))
        users = [v for t, v in profile.identities if t == "user_id"]
        anons = [v for t, v in profile.identities if t == "anonymous_id"]
        start = time.perf_counter()
        full_scan_baseline(lake, users, anons, 20)
        scans.append(time.perf_counter() - start)
    print(f"full lake scan, events only (baseline):  {percentiles(scans)}")
    ratio = statistics.median(scans) / statistics.median(by_days)
    print(f"median ratio baseline / by days: {ratio:.0f}x")

    if args.url:
        headers = {"Authorization": f"Bearer {args.token}"}
        with httpx.Client(base_url=args.url, headers=headers, timeout=30) as http:
            http.get(f"/v1/profiles/{sample[0]}")
            over_http = []
            for user in sample:
                start = time.perf_counter()
                answer = http.get(f"/v1/profiles/{user}", params={"type": "user_id"})
                over_http.append(time.perf_counter() - start)
                answer.raise_for_status()
        print(f"GET /v1/profiles/{{id}} (20 events):     {percentiles(over_http)}")
    store.close()


if __name__ == "__main__":
    main()
