from pathlib import Path

import pytest

from kirana.serving.store import ServingStore


def test_replace_is_atomic_and_versioned(tmp_path: Path) -> None:
    store = ServingStore(tmp_path / "serving.sqlite")
    store.replace_recommendations("buy_again", [("u1", [("a", 2.0), ("b", 1.0)])], version="r1")
    assert store.recommendations("buy_again", "u1") == [("a", 2.0), ("b", 1.0)]
    store.replace_recommendations("buy_again", [("u2", [("c", 1.0)])], version="r2")
    assert store.recommendations("buy_again", "u1") == []
    assert store.recommendations("buy_again", "u2") == [("c", 1.0)]
    assert store.versions() == {"buy_again": ("r2", 1)}


def test_failed_publish_keeps_previous_lists(tmp_path: Path) -> None:
    store = ServingStore(tmp_path / "serving.sqlite")
    store.replace_recommendations("popular", [("*", [("a", 1.0)])], version="r1")

    def broken():
        yield ("*", [("b", 1.0)])
        raise RuntimeError("job died mid-publish")

    with pytest.raises(RuntimeError):
        store.replace_recommendations("popular", broken(), version="r2")
    assert store.recommendations("popular", "*") == [("a", 1.0)]
    assert store.versions()["popular"][0] == "r1"
    # a second connection (another process) sees the same
    assert ServingStore(tmp_path / "serving.sqlite").recommendations("popular", "*") == [("a", 1.0)]
