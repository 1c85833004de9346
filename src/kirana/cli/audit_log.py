"""The CLI's changes in the audit log, recorded in one place, as the API's are.

The CLI changes stores directly (no server, no token), so the API's middleware never
sees it. :func:`audit_changes` wraps every command that changes something (listed in
:data:`CHANGES`, by command path) so that, once it has succeeded, the audit log gets who
(``cli:<operating-system user>``), what (``kirana <path>``, the arguments as the target,
the options with credentials and personal identifiers masked) and when. A command that
fails records nothing: it changed nothing. Read-only commands are listed in
:data:`READS`; a test fails for a command in neither list, so a new one gets a decision.
"""

from __future__ import annotations

import functools
import getpass
import json
from collections.abc import Callable, Iterator
from typing import Any

import typer

from kirana.audit.redact import is_sensitive_field, redact

#: Commands that change state, by path (group names, then the command).
CHANGES: frozenset[tuple[str, ...]] = frozenset(
    {
        ("demo",),
        *(
            ("sources", verb)
            for verb in (
                "create",
                "rotate-key",
                "disable",
                "enable",
                "delete",
                "add-postgres",
                "add-mysql",
                "add-files",
                "add-table",
                "sync",
                "remove",
            )
        ),
        ("tokens", "create"),
        ("tokens", "revoke"),
        ("privacy", "delete"),
        ("models", "fit-buying-patterns"),
        ("jobs", "run"),
        ("jobs", "rollback"),
        ("traits", "save"),
        ("audiences", "save"),
        ("segments", "refresh"),
        *(("experiments", verb) for verb in ("create", "update", "start", "stop", "delete")),
        *(
            ("experiments", kind, verb)
            for kind in ("metrics", "flags")
            for verb in ("save", "delete")
        ),
        *(("destinations", verb) for verb in ("create", "replay", "delete")),
        *(("syncs", verb) for verb in ("create", "run", "delete")),
        ("content", "import"),
        *(
            ("content", kind, verb)
            for kind in ("placements", "widgets", "items")
            for verb in ("create", "update", "delete")
        ),
        ("warehouse", "export"),
    }
)

#: Commands that only read (or serve: ``serve`` records nothing itself, its API does).
READS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("serve",),
        ("sql",),
        ("status",),
        ("audit",),
        ("profile",),
        ("stats",),
        ("sources", "list"),
        ("sources", "status"),
        ("sources", "changes"),
        ("tokens", "list"),
        ("quarantine", "list"),
        ("models", "evaluate"),
        ("jobs", "list"),
        ("jobs", "runs"),
        ("jobs", "show"),
        ("traits", "list"),
        ("audiences", "list"),
        ("audiences", "estimate"),
        ("audiences", "history"),
        *(("experiments", verb) for verb in ("list", "show", "assign", "payload", "report")),
        ("experiments", "metrics", "list"),
        ("experiments", "flags", "list"),
        *(("destinations", verb) for verb in ("list", "show", "status", "dead-letters")),
        ("syncs", "list"),
        ("syncs", "runs"),
        ("content", "export"),
        *(
            ("content", kind, verb)
            for kind in ("placements", "widgets", "items")
            for verb in ("list", "show")
        ),
        ("content", "placements", "stats"),
    }
)

#: Parameters that name what a command changes, in the order a target is built from.
_TARGET_PARAMETERS = ("name", "key", "widget", "output", "token_id", "identifiers")


def commands(app: typer.Typer, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of ``app`` with its path and its registration (callback inside)."""
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")  # type: ignore[union-attr]
        yield (*path, name), info
    for group in app.registered_groups:
        yield from commands(group.typer_instance, (*path, str(group.name)))


def audit_changes(app: typer.Typer) -> None:
    """Wrap the callback of every command in :data:`CHANGES` (once) to record it."""
    for path, info in commands(app):
        if path in CHANGES and not getattr(info.callback, "_audited", False):
            info.callback = _recording(path, info.callback)


def _recording(path: tuple[str, ...], callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(**kwargs: Any) -> Any:
        try:
            result = callback(**kwargs)
        except typer.Exit as exc:  # raised on success by some commands
            if exc.exit_code == 0:
                record(path, kwargs)
            raise
        record(path, kwargs)
        return result

    run._audited = True  # type: ignore[attr-defined]
    return run


def entry(path: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
    """The audit entry for a successful ``kirana <path>`` with ``params`` (pure)."""
    values = json.loads(
        json.dumps({k: v for k, v in params.items() if k != "data_dir"}, default=str)
    )
    target = []
    for name in _TARGET_PARAMETERS:
        value = values.get(name)
        if value is None:
            continue
        if is_sensitive_field(name) or name == "identifiers":
            target.append("***")
        else:
            target.append(value if isinstance(value, str) else json.dumps(value))
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = "unknown"
    return {
        "actor_id": "cli",
        "actor_name": f"cli:{user}",
        "action": "kirana " + " ".join(path),
        "target": "/".join(target),
        "summary": {"params": redact({k: v for k, v in values.items() if k != "identifiers"})},
        "status": 0,
    }


def record(path: tuple[str, ...], params: dict[str, Any]) -> None:
    """Write the entry; a failure is reported, never turned into the command's failure."""
    from kirana.config import load_settings
    from kirana.runtime import open_store

    try:
        store = open_store(load_settings(params.get("data_dir")))
        try:
            store.record_audit(**entry(path, params))
        finally:
            store.close()
    except Exception as exc:  # the change is made; say its record is missing
        typer.secho(f"warning: not in the audit log: {exc}", fg=typer.colors.YELLOW, err=True)
