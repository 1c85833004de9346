"""``kirana sources``, ``kirana tokens``, ``kirana audit``, ``kirana quarantine``,
``kirana status``.

These commands change the store directly (no server needed); :mod:`kirana.cli.audit_log`
records each change in the audit log.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any

import typer

from kirana.cli.options import DataDir, fail

sources_app = typer.Typer(
    help="Sources: where events come from, each with its write key.", no_args_is_help=True
)
tokens_app = typer.Typer(
    help="Access tokens for the management APIs and the console.", no_args_is_help=True
)
quarantine_app = typer.Typer(
    help="Events that were rejected, with the reason.", no_args_is_help=True
)


def _store(data_dir):
    from kirana.config import load_settings
    from kirana.runtime import open_store

    return open_store(load_settings(data_dir))


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h`` or ``2d`` as a duration."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"--overlap must be a number of seconds or like 15m, 1h, 2d, not {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@sources_app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="A name for the source, e.g. `ios-app`.")],
    data_dir: DataDir = None,
) -> None:
    """Create a source and print its write key (shown only this once)."""
    from kirana.store.protocol import AlreadyExists

    store = _store(data_dir)
    try:
        _, key = store.create_source(name)
    except AlreadyExists as exc:
        raise fail(f"{exc}; for a new key run `kirana sources rotate-key {name}`") from exc
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(key)


@sources_app.command("list")
def sources_list(data_dir: DataDir = None) -> None:
    """List sources: event sources with the first characters of their write keys, then
    replication sources."""
    from rich.console import Console
    from rich.table import Table

    from kirana.cli.replication import replication_rows

    table = Table("name", "id", "write keys", "state", "created", title="event sources")
    for s in _store(data_dir).list_sources():
        keys = ", ".join(
            f"{k.prefix}…" + (f" (until {k.expires_at:%Y-%m-%d %H:%M} UTC)" if k.expires_at else "")
            for k in s.keys
        )
        state = "enabled" if s.enabled else "disabled"
        table.add_row(s.name, s.id, keys, state, s.created_at.isoformat(timespec="seconds"))
    Console().print(table)
    replicated = replication_rows(data_dir)
    if replicated:
        table = Table("name", "kind", "from", "tables", title="replication sources")
        for row in replicated:
            table.add_row(*row)
        Console().print(table)


@sources_app.command("rotate-key")
def sources_rotate_key(
    name: Annotated[str, typer.Argument(help="The source.")],
    overlap: Annotated[
        str, typer.Option(help="How long the previous keys keep working: 90s, 15m, 1h, 2d.")
    ] = "24h",
    data_dir: DataDir = None,
) -> None:
    """Print a new write key for the source; its previous keys stop after --overlap."""
    from kirana.store.protocol import NotFound

    store = _store(data_dir)
    try:
        window = parse_duration(overlap)
        _, key = store.rotate_write_key(name, window)
    except (NotFound, ValueError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(key)


def _set_enabled(name: str, enabled: bool, data_dir: Any) -> None:
    from kirana.store.protocol import NotFound

    store = _store(data_dir)
    try:
        store.set_source_enabled(name, enabled)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"source {name!r} {'enabled' if enabled else 'disabled'}")


@sources_app.command("disable")
def sources_disable(
    name: Annotated[str, typer.Argument(help="The source.")], data_dir: DataDir = None
) -> None:
    """Refuse the source's events (403 `source_disabled`, nothing stored) until enabled."""
    _set_enabled(name, False, data_dir)


@sources_app.command("enable")
def sources_enable(
    name: Annotated[str, typer.Argument(help="The source.")], data_dir: DataDir = None
) -> None:
    """Accept the source's events again."""
    _set_enabled(name, True, data_dir)


@sources_app.command("delete")
def sources_delete(
    name: Annotated[str, typer.Argument(help="The source.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a source: its write keys stop working at once; the events it sent stay."""
    from kirana.store.protocol import NotFound

    if not yes:
        typer.confirm(f"delete source {name!r}? its write keys stop working at once", abort=True)
    store = _store(data_dir)
    try:
        source = store.delete_source(name)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"source {name!r} ({source.id}) deleted; its events are kept")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[
        str, typer.Option("--role", help="admin (read and change) or viewer (read only).")
    ] = "viewer",
    data_dir: DataDir = None,
) -> None:
    """Create an access token and print it (it is shown only once)."""
    store = _store(data_dir)
    try:
        _, secret = store.create_token(name, role)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(str(exc)) from exc
    typer.echo(secret)


@tokens_app.command("list")
def tokens_list(data_dir: DataDir = None) -> None:
    """List access tokens: id, name, role, created, revoked (secrets are never stored)."""
    for t in _store(data_dir).list_tokens():
        revoked = f"revoked {t.revoked_at.isoformat(timespec='seconds')}" if t.revoked_at else ""
        typer.echo(
            f"{t.id}\t{t.name}\t{t.role}\t{t.created_at.isoformat(timespec='seconds')}\t{revoked}"
        )


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (`kirana tokens list`).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token: every request with it gets 401 from now on."""
    from kirana.store.protocol import NotFound

    store = _store(data_dir)
    try:
        token = store.revoke_token(token_id)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"token {token.id} ({token.name}) revoked")


def audit(
    actor: Annotated[str | None, typer.Option(help="Only this token (id or name).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only actions starting so, e.g. `DELETE`.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this object, e.g. a name.")] = None,
    before: Annotated[int | None, typer.Option(help="Entries older than this seq.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 50,
    data_dir: DataDir = None,
) -> None:
    """The audit log of management changes, newest first, as JSON lines."""
    entries = _store(data_dir).list_audit(
        before=before, limit=limit, actor=actor, action=action, target=target
    )
    for e in entries:
        row = {
            "seq": e.seq,
            "at": e.at.isoformat(),
            "actor_id": e.actor_id,
            "actor_name": e.actor_name,
            "action": e.action,
            "target": e.target,
            "status": e.status,
            "summary": e.summary,
        }
        typer.echo(json.dumps(row))


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="Only this source (by name).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 50,
    data_dir: DataDir = None,
) -> None:
    """List rejected events, oldest first, as JSON lines."""
    from kirana.store.protocol import NotFound

    store = _store(data_dir)
    try:
        source_id = store.source_by_name(source).id if source else None
    except NotFound as exc:
        raise fail(str(exc)) from exc
    for e in store.list_quarantined(source_id=source_id, limit=limit):
        row = {
            "offset": e.log_offset,
            "source_id": e.source_id,
            "received_at": e.received_at.isoformat(),
            "index": e.batch_index,
            "messageId": e.message_id,
            "code": e.code,
            "reason": e.reason,
            "raw": e.raw,
        }
        typer.echo(json.dumps(row))


def status(data_dir: DataDir = None) -> None:
    """Show the event log's size, every consumer's position and lag, and every scheduled job.

    The consumers and jobs are the ones ``kirana serve`` runs with these settings, read from
    where each keeps its position (a reader of the log, so it works while Kirana runs);
    error counts of a running Kirana are live state: ``GET /v1/status`` or the console.
    """
    from kirana.config import load_settings
    from kirana.lake.catalog import lake_tables
    from kirana.runtime import Platform

    settings = load_settings(data_dir)
    log_dir = settings.log_dir
    size = sum(p.stat().st_size for p in log_dir.glob("*.seg")) if log_dir.exists() else 0
    typer.echo(f"data dir     {settings.data_dir.resolve()}")
    typer.echo(f"event log    {size:,} bytes in {log_dir}")
    try:
        platform = Platform.open(settings, role="worker")
    except FileNotFoundError:
        typer.echo(f"consumers    none yet: `kirana serve` starts them and creates {log_dir}")
    except Exception as exc:  # a log that cannot be read: say so, still show the lake
        typer.echo(f"consumers    unknown: cannot read the event log ({exc})")
    else:
        try:
            for name, consumer in platform.consumer_status().items():
                typer.echo(
                    f"consumer     {name}: position {consumer['position']:,}, "
                    f"{consumer['lag']:,} bytes behind"
                )
            for name, job in platform.jobs.items():
                typer.echo(f"job          {name}: every {_period(job.every_seconds)}")
        finally:
            platform.close()
    for name, path in lake_tables(settings.lake_dir).items():
        typer.echo(f"lake table   {name}: {path}")


def _period(seconds: float) -> str:
    """``86400`` -> ``1d``, ``2.0`` -> ``2s``: how often a job runs, as a person says it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
