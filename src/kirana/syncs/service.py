"""Managing syncs: what the API routes and the CLI both call (no HTTP here)."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kirana.config import Settings
from kirana.destinations.config import ConfigError
from kirana.destinations.service import AlreadyExists, NotFound
from kirana.destinations.store import DeliveryStore
from kirana.syncs.model import SyncConfig, parse_sync
from kirana.syncs.runner import SyncRunner
from kirana.syncs.store import SyncStore


def snapshot_dir(settings: Settings) -> Path:
    return settings.state_dir / "syncs"


def runner(settings: Settings, delivery: DeliveryStore) -> SyncRunner:
    from kirana.runtime import open_profile_store

    return SyncRunner(
        SyncStore(delivery),
        delivery,
        settings.lake_dir,
        snapshot_dir(settings),
        lambda: open_profile_store(settings),
    )


def create(delivery: DeliveryStore, raw: dict[str, Any], *, replace: bool = False) -> SyncConfig:
    config = parse_sync(raw)
    if delivery.destination(config.destination) is None:
        raise ConfigError(
            f"`destination`: no destination named {config.destination!r}; create it first "
            "with `kirana destinations create`"
        )
    syncs = SyncStore(delivery)
    if not replace and syncs.get(config.name) is not None:
        raise AlreadyExists(f"sync {config.name!r} exists; delete it first or pass replace")
    syncs.save(config)
    return config


def get(delivery: DeliveryStore, name: str) -> SyncConfig:
    config = SyncStore(delivery).get(name)
    if config is None:
        raise NotFound(f"no sync named {name!r}; see `kirana syncs list`")
    return config


def listing(delivery: DeliveryStore) -> list[dict[str, Any]]:
    syncs = SyncStore(delivery)
    out = []
    for config in syncs.all():
        last = syncs.runs(config.name, 1)
        out.append({**config.model_dump(mode="json"), "last_run": last[0] if last else None})
    return out


def run(settings: Settings, delivery: DeliveryStore, name: str) -> dict[str, Any]:
    get(delivery, name)
    return asdict(runner(settings, delivery).run(name))


def runs(delivery: DeliveryStore, name: str, limit: int = 20) -> list[dict[str, Any]]:
    get(delivery, name)
    return SyncStore(delivery).runs(name, limit)


def delete(settings: Settings, delivery: DeliveryStore, name: str) -> None:
    if SyncStore(delivery).delete(name) is None:
        raise NotFound(f"no sync named {name!r}")
    shutil.rmtree(snapshot_dir(settings) / name, ignore_errors=True)
