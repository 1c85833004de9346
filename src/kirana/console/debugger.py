"""The live event debugger: a source's latest events from the lake, interleaved with its
rejected events from the quarantine, newest first, and a cursor for what arrives next.

The lake and the quarantine are filled by two consumers that advance independently, so the
cursor keeps one log offset for each (``"<lake>.<quarantine>"``): neither can skip rows
the other has not landed yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kirana.console.templating import profile_url, when
from kirana.store.protocol import OperationalStore

PAGE = 50
FILES_PER_STEP = 8


def parse_cursor(text: str | None) -> tuple[int, int] | None:
    try:
        lake, quarantine = (text or "").split(".")
        return int(lake), int(quarantine)
    except ValueError:
        return None


def _lake_rows(lake_dir: Path, source_id: str, after: int | None) -> list[dict[str, Any]]:
    from kirana.console.lake_files import EventFiles

    files = EventFiles.open(lake_dir)
    if files is None:
        return []
    where = "source_id = $source" + (" AND log_offset > $after" if after is not None else "")
    params: dict[str, Any] = {"source": source_id, "limit": PAGE}
    if after is not None:
        params["after"] = after
    rows: list[tuple] = []
    candidates = files.newest_first(source_id, after)
    read = 0
    while read < len(candidates):
        read += FILES_PER_STEP  # files overlap in offsets (compaction): query all read so far
        rows = (
            files.connect([path for path, _ in candidates[:read]])
            .execute(
                "SELECT log_offset, received_at, type, coalesce(event, name), user_id, "
                "anonymous_id, message_id, properties, traits, context FROM events WHERE "
                + where
                + " ORDER BY log_offset DESC LIMIT $limit",
                params,
            )
            .fetchall()
        )
        unread_top = candidates[read][1] if read < len(candidates) else -1
        if len(rows) >= PAGE and unread_top is not None and unread_top <= rows[-1][0]:
            break  # no unread file holds anything newer than the page already found
    out = []
    for offset, received, kind, name, user_id, anon, message_id, props, traits, context in rows:
        raw = {
            "messageId": message_id,
            "type": kind,
            "userId": user_id,
            "anonymousId": anon,
            "properties": json.loads(props) if props else None,
            "traits": json.loads(traits) if traits else None,
            "context": json.loads(context) if context else None,
        }
        label, url = (user_id, profile_url(user_id)) if user_id else (anon, None)
        if url is None and anon:
            url = profile_url(anon, "anonymous_id")
        out.append(
            {
                "offset": offset,
                "received_at": when(received),
                "type": kind,
                "name": name,
                "user_label": label,
                "user_url": url,
                "quarantined": False,
                "raw": json.dumps({k: v for k, v in raw.items() if v is not None}, indent=2),
            }
        )
    return out


def _quarantine_rows(store: OperationalStore, source_id: str, after: int) -> list[dict[str, Any]]:
    return [
        {
            "offset": e.log_offset,
            "received_at": when(e.received_at),
            "quarantined": True,
            "code": e.code,
            "reason": e.reason,
            "raw": e.raw,
        }
        for e in store.list_quarantined(source_id=source_id, after_offset=after, limit=PAGE)
    ]


def latest(
    store: OperationalStore, lake_dir: Path, source_id: str, cursor: tuple[int, int] | None
) -> dict[str, Any]:
    """Rows newer than ``cursor`` (or the latest page), newest first, and the next cursor."""
    if cursor is None:
        lake = _lake_rows(lake_dir, source_id, None)
        since = min((r["offset"] for r in lake), default=-1) - 1 if lake else -1
        bad = _quarantine_rows(store, source_id, since)
        lake_after = max((r["offset"] for r in lake), default=-1)
        quarantine_after = max((r["offset"] for r in bad), default=since)
    else:
        lake_after, quarantine_after = cursor
        lake = _lake_rows(lake_dir, source_id, lake_after)
        bad = _quarantine_rows(store, source_id, quarantine_after)
        lake_after = max([lake_after] + [r["offset"] for r in lake])
        quarantine_after = max([quarantine_after] + [r["offset"] for r in bad])
    rows = sorted(lake + bad, key=lambda r: r["offset"], reverse=True)
    return {"rows": rows, "after": f"{lake_after}.{quarantine_after}"}
