"""The personalise API's profile cache stays about rate x ttl entries, never max_entries."""

from __future__ import annotations

import time
from pathlib import Path

from kirana.identity.sqlite_store import SQLiteProfileStore
from kirana.serving.profiles import ProfileReader


def test_expired_entries_leave_as_new_ones_arrive(tmp_path: Path) -> None:
    reader = ProfileReader(SQLiteProfileStore(tmp_path / "p.sqlite"), ttl=0.05)
    for i in range(100):
        reader.resolve(f"u{i}", None)
    assert len(reader._cache) == 100
    time.sleep(0.1)
    for i in range(20):
        reader.resolve(f"v{i}", None)
    assert set(reader._cache) == {(f"v{i}", None) for i in range(20)}
    reader.close()


def test_the_cache_never_exceeds_its_bound(tmp_path: Path) -> None:
    reader = ProfileReader(SQLiteProfileStore(tmp_path / "p.sqlite"), ttl=60, max_entries=50)
    for i in range(200):
        reader.resolve(f"u{i}", None)
        assert len(reader._cache) <= 50
    assert ("u199", None) in reader._cache  # the newest stay, the oldest went
    assert ("u0", None) not in reader._cache
    reader.close()
