"""How the cost of erasing one person grows with the size of the stores.

Two steps dominate an erasure once the event log is redacted:

* the lake: `privacy.delta_rows.delete_rows_where_in` reads the identifier columns of every
  file of ``events`` and rewrites the files that hold the person, against delta-rs's own
  ``DeltaTable.delete`` (the baseline; it names the person in the log and writes view types,
  see the module) on a copy of the same table;
* SQLite: `privacy.participants.vacuum_sqlite` rebuilds a store file (here a serving store of
  per-user lists), against deleting the person's rows alone (the baseline).

    .venv/bin/python benchmarks/erasure.py --rows 100000 1000000 --keys 100000 1000000

Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kirana.privacy.delta_rows import delete_rows_where_in
from kirana.privacy.participants import vacuum_sqlite

FILES = 20
PERSON = "person-to-erase"


def events(rows: int, seed: int = 7) -> list[pa.Table]:
    """``FILES`` appends of events by 10k users; the person has 50 events spread over them."""
    rng = np.random.default_rng(seed)
    users = np.char.add("user-", rng.integers(0, 10_000, rows).astype(str))
    users[rng.choice(rows, 50, replace=False)] = PERSON
    table = pa.table(
        {
            "message_id": [f"m-{i}" for i in range(rows)],
            "user_id": users,
            "anonymous_id": np.char.add("anon-", rng.integers(0, 20_000, rows).astype(str)),
            "event": rng.choice(["Product Viewed", "Product Added", "Order Completed"], rows),
            "properties": ['{"product_id": "p1", "price": 2.5}'] * rows,
        }
    )
    step = -(-rows // FILES)
    return [table.slice(i, step) for i in range(0, rows, step)]


def lake(rows: int, root: Path) -> dict:
    path = root / "events"
    for part in events(rows):
        write_deltalake(path, part, mode="append")
    copy = root / "events-baseline"
    shutil.copytree(path, copy)
    started = time.perf_counter()
    ours = delete_rows_where_in(path, {"user_id": [PERSON]})
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = DeltaTable(copy).delete(f"user_id = '{PERSON}'")["num_deleted_rows"]
    theirs_s = time.perf_counter() - started
    assert ours == theirs == 50
    return {
        "rows": rows,
        "files": FILES,
        "delete_s": round(ours_s, 3),
        "deltalake_delete_s": round(theirs_s, 3),
        "ratio": round(ours_s / theirs_s, 2),
    }


def sqlite_store(keys: int, root: Path) -> dict:
    path = root / "serving.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE recommendations (widget TEXT, key TEXT, items BLOB, "
        "PRIMARY KEY (widget, key)) WITHOUT ROWID"
    )
    items = json.dumps([[f"p{i}", 1.0 / (i + 1)] for i in range(20)]).encode()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO recommendations VALUES ('buy_again', ?, ?)",
        ((f"user-{i}", items) for i in range(keys)),
    )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size_mb = path.stat().st_size / 2**20
    started = time.perf_counter()
    db.execute("DELETE FROM recommendations WHERE key = 'user-1'")
    delete_s = time.perf_counter() - started
    started = time.perf_counter()
    vacuum_sqlite(db)
    vacuum_s = time.perf_counter() - started
    db.close()
    return {
        "keys": keys,
        "file_mb": round(size_mb, 1),
        "delete_s": round(delete_s, 4),
        "vacuum_s": round(vacuum_s, 3),
        "vacuum_mb_per_s": round(size_mb / vacuum_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--keys", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps({"step": "lake", **lake(rows, Path(root))}), flush=True)
    for keys in args.keys:
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps({"step": "sqlite", **sqlite_store(keys, Path(root))}), flush=True)


if __name__ == "__main__":
    main()
