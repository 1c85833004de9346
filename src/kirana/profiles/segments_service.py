"""Saving, listing and estimating computed traits and audiences.

The HTTP routes and the CLI both call this; it knows nothing of either.
Saving validates the definition on its own and against the others (unknown
references, cycles), so a broken definition is never stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kirana.identity.store import SQLProfileStore
from kirana.profiles.relations import segment_connection
from kirana.segments.compile import compile_audience
from kirana.segments.definitions import parse_audience, parse_computed_trait
from kirana.segments.dependencies import check_references
from kirana.segments.rules import DefinitionError

KINDS = {"computed_trait": parse_computed_trait, "audience": parse_audience}


def _named(definition: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(definition, dict):
        raise DefinitionError("", "a definition must be a JSON object")
    given = definition.get("name", name)
    if given != name:
        raise DefinitionError("name", f'"{given}" does not match the name in the path "{name}"')
    return {**definition, "name": name}


def validate(store: SQLProfileStore, kind: str, name: str, definition: dict[str, Any]) -> dict:
    """The definition as it will be stored; DefinitionError naming what is wrong otherwise."""
    definition = _named(definition, name)
    KINDS[kind](definition)  # the definition on its own
    traits = {d.name: d.definition for d in store.definitions("computed_trait")}
    audiences = {d.name: d.definition for d in store.definitions("audience")}
    (traits if kind == "computed_trait" else audiences)[name] = definition
    check_references(
        [parse_audience(a) for a in audiences.values()],
        [parse_computed_trait(t) for t in traits.values()],
    )  # and among the others: references, cycles
    return definition


def save(store: SQLProfileStore, kind: str, name: str, definition: dict[str, Any]) -> dict:
    definition = validate(store, kind, name, definition)
    with store.transaction():
        store.save_definition(kind, name, definition)
    return definition


def delete(store: SQLProfileStore, kind: str, name: str) -> bool:
    """Delete a definition unless an audience still refers to it."""
    audiences = [
        d.definition for d in store.definitions("audience") if d.name != name or kind != "audience"
    ]
    traits = [
        d.definition
        for d in store.definitions("computed_trait")
        if d.name != name or kind != "computed_trait"
    ]
    check_references(
        [parse_audience(a) for a in audiences], [parse_computed_trait(t) for t in traits]
    )
    with store.transaction():
        removed = store.delete_definition(kind, name)
        if removed and kind == "computed_trait":
            store.replace_computed_values(name, [], None)
    return removed


def estimate(store: SQLProfileStore, lake_dir: Path, definition: dict[str, Any]) -> dict[str, int]:
    """How many profiles an audience would hold now, before it is saved."""
    found = preview(store, lake_dir, definition, limit=0)
    return {"size": found["size"], "profiles": found["profiles"]}


def preview(
    store: SQLProfileStore, lake_dir: Path, definition: dict[str, Any], limit: int = 20
) -> dict[str, Any]:
    """:func:`estimate` plus the ids of up to ``limit`` members (the console's preview)."""
    audience = parse_audience(_named(definition, definition.get("name", "estimate")))
    conn = segment_connection(store, lake_dir)
    members = f"SELECT profile_id FROM ({compile_audience(audience, datetime.now(UTC))})"
    [(size,)] = conn.execute(f"SELECT count(*) FROM ({members})").fetchall()
    [(total,)] = conn.execute("SELECT count(*) FROM profiles").fetchall()
    rows = []
    if limit > 0:
        rows = conn.execute(f"{members} ORDER BY profile_id LIMIT {int(limit)}").fetchall()
    return {"size": int(size), "profiles": int(total), "members": [r[0] for r in rows]}
