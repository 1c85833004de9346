"""Managing destinations: what the API routes and the CLI both call (no HTTP here)."""

from __future__ import annotations

from typing import Any

from kirana.destinations.config import ConfigError, DestinationConfig, parse_destination, redacted
from kirana.destinations.secrets import keep_stored_secrets, masks_left, secret_values
from kirana.destinations.store import DeliveryStore
from kirana.redaction import scrub


class NotFound(LookupError):
    """No destination by that name."""


class AlreadyExists(ValueError):
    """A destination by that name exists (use replace to change it)."""


def _check_templates(config: DestinationConfig) -> None:
    if config.kind != "email":
        return
    from string import Template

    for field in ("subject", "body"):
        if not Template(config.settings[field]).is_valid():
            raise ConfigError(
                f"`settings.{field}`: not a valid template; write fields as $name or ${{name}} "
                "and a literal dollar as $$"
            )


def create(
    store: DeliveryStore, raw: dict[str, Any], *, replace: bool = False
) -> DestinationConfig:
    """Validate and save a destination; refuses to overwrite unless ``replace``.

    On ``replace``, credentials sent as ``"***"`` (as every answer shows them) or left
    out keep their stored values (``destinations/secrets.py``).
    """
    stored = store.destination(str(raw.get("name"))) if replace else None
    if stored is not None:
        raw = keep_stored_secrets(raw, stored.kind, stored.settings)
    if isinstance(raw.get("settings"), dict) and (problem := masks_left(raw["settings"])):
        raise ConfigError(problem)
    config = parse_destination(raw)
    _check_templates(config)
    if not replace and store.destination(config.name) is not None:
        raise AlreadyExists(f"destination {config.name!r} exists; delete it first or pass replace")
    store.save_destination(config)
    return config


def get(store: DeliveryStore, name: str) -> DestinationConfig:
    config = store.destination(name)
    if config is None:
        raise NotFound(f"no destination named {name!r}; see `kirana destinations list`")
    return config


def _scrubbed(row: dict[str, Any], config: DestinationConfig) -> dict[str, Any]:
    """A row with its stored error scrubbed again as it is shown.

    Errors are scrubbed when stored (the deliverer); this also covers errors stored by
    an older version, or before a credential was added to the configuration.
    """
    if row.get("last_error"):
        row["last_error"] = scrub(row["last_error"], secret_values(config.settings))
    return row


def describe(store: DeliveryStore, name: str) -> dict[str, Any]:
    """Config (secrets masked) and health."""
    config = get(store, name)
    return {**redacted(config), "health": _scrubbed(store.health(name), config)}


def status(store: DeliveryStore) -> list[dict[str, Any]]:
    return [
        _scrubbed({"name": c.name, "kind": c.kind, **store.health(c.name)}, c)
        for c in store.destinations()
    ]


def delete(store: DeliveryStore, name: str) -> None:
    if not store.delete_destination(name):
        raise NotFound(f"no destination named {name!r}")


def dead_letters(store: DeliveryStore, name: str, limit: int = 100) -> list[dict[str, Any]]:
    config = get(store, name)
    return [_scrubbed(row, config) for row in store.dead_letters(name, limit)]


def records(
    store: DeliveryStore, name: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Per-record delivery status, oldest first (errors scrubbed)."""
    config = get(store, name)
    return [_scrubbed(row, config) for row in store.records(name, status, limit)]


def replay(store: DeliveryStore, name: str, record_ids: list[str] | None = None) -> int:
    """Queue dead letters again (all of them, or the given record ids)."""
    get(store, name)
    return store.replay(name, record_ids)


def record_status(store: DeliveryStore, name: str, record_id: str) -> dict[str, Any]:
    config = get(store, name)
    found = store.record_status(name, record_id)
    if found is None:
        raise NotFound(f"destination {name!r} has no record {record_id!r} (or it was pruned)")
    return _scrubbed(found, config)
