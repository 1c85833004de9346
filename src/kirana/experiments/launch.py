"""What to tell someone starting an experiment that would assign nobody.

Starting is allowed either way (a phase may be moved later, coverage raised), but an
experiment whose phase has ended, whose coverage is 0 or whose namespace slice is empty
would look "running" while nobody is ever in it. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from kirana.experiments.assignment.definitions import Experiment


def start_warnings(experiment: Experiment, now: datetime) -> list[str]:
    """One sentence per reason ``experiment`` would assign nobody (now or from now on)."""
    warnings = []
    if experiment.phase_end is not None and experiment.phase_end <= now:
        warnings.append(
            f"its phase ended at {experiment.phase_end.isoformat()}: it assigns nobody; "
            "create it again with a later phase_end, or none"
        )
    elif experiment.phase_start is not None and experiment.phase_start > now:
        warnings.append(
            f"its phase starts at {experiment.phase_start.isoformat()}: "
            "it assigns nobody until then"
        )
    if experiment.coverage <= 0:
        warnings.append("its coverage is 0: it assigns nobody; raise coverage above 0")
    namespace = experiment.namespace
    if namespace is not None and namespace.end <= namespace.start:
        warnings.append(
            f"its namespace slice [{namespace.start}, {namespace.end}) of "
            f"{namespace.id!r} is empty: it assigns nobody"
        )
    if experiment.targeting is not None and _never_true(experiment.targeting):
        warnings.append("its targeting condition can never be true: it assigns nobody")
    return warnings


def _never_true(condition: object) -> bool:
    """Conditions that exclude everyone by their form alone: an empty ``$or``, ``$in: []``,
    or any of those inside an ``$and`` or at the top level."""
    if not isinstance(condition, dict):
        return False
    for key, value in condition.items():
        if key == "$or" and isinstance(value, list) and not value:
            return True
        if key == "$and" and isinstance(value, list) and any(_never_true(c) for c in value):
            return True
        if isinstance(value, dict) and value.get("$in") == []:
            return True
    return False
