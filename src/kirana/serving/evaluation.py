"""Logged decisions joined to their clicks, ready for ``automation.replay`` (IPS, SNIPS, replay).

Decisions come from the ``decisions`` Delta table the personalise API writes; clicks are the
``Promotion Clicked`` / ``Product Clicked`` / ``Product Added`` events in ``events`` whose
``properties.tracking_id`` is a token of one of the decision's slots. Each decision becomes a
:class:`~kirana.automation.replay.LoggedDecision` for its top widget (or the first item of a
named widget) through :func:`~kirana.automation.replay.from_decision`, propensity included.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from kirana.automation.ranking import FEEDBACK_EVENTS, Decision
from kirana.automation.replay import LoggedDecision, from_decision
from kirana.automation.tracking import TokenError, decode_token
from kirana.serving.decision_log import TABLE

CLICK_EVENTS = tuple(e for e, kind in FEEDBACK_EVENTS.items() if kind == "click")


def clicked_slots(lake_dir: Path) -> set[str]:
    """Core tracking ids (``decision.widget.item``) that received a click, from the lake."""
    from kirana.lake.catalog import connect, lake_tables

    if "events" not in lake_tables(lake_dir):
        return set()
    rows = (
        connect(lake_dir)
        .execute(
            "SELECT json_extract_string(properties, '$.tracking_id') FROM events "
            "WHERE type = 'track' AND list_contains($events, event) "
            "AND json_extract_string(properties, '$.tracking_id') IS NOT NULL",
            {"events": list(CLICK_EVENTS)},
        )
        .fetchall()
    )
    out = set()
    for (value,) in rows:
        try:
            out.add(decode_token(value).slot_id)
        except TokenError:
            continue
    return out


def decisions(lake_dir: Path, placement: str | None = None) -> list[Decision]:
    """Logged decisions, oldest first (optionally of one placement)."""
    from kirana.lake.catalog import connect, lake_tables

    if TABLE not in lake_tables(lake_dir):
        return []
    rows = (
        connect(lake_dir)
        .execute(
            f"SELECT decision FROM {TABLE} WHERE $p IS NULL OR placement = $p "
            "ORDER BY decided_at, decision_id",
            {"p": placement},
        )
        .fetchall()
    )
    decoder = msgspec.json.Decoder(Decision)
    return [decoder.decode(r[0]) for r in rows]


def logged_decisions(
    lake_dir: Path, placement: str | None = None, widget: str | None = None
) -> list[LoggedDecision]:
    """Evaluation rows: the top widget's choice (or ``widget``'s first item) and its reward."""
    clicked = clicked_slots(lake_dir)
    out = []
    for d in decisions(lake_dir, placement):
        if not d.widgets or (widget is not None and all(w.key != widget for w in d.widgets)):
            continue
        out.append(from_decision(d, clicked, widget))
    return out
