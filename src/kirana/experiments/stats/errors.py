"""The one error the stats engine raises for bad input.

Callers (the CLI, the API) show it verbatim, so it always names the offending field and the
rule it broke: ``variations[1].sum_squares: variance would be negative``.
"""

from __future__ import annotations

import re


class StatsInputError(ValueError):
    """Input that cannot be analysed; ``field`` says where, ``rule`` says why."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule

    def within(self, prefix: str, rename: dict[str, str] | None = None) -> StatsInputError:
        """The same error addressed from an outer document, e.g. ``variations[1].``.

        ``rename`` maps dataclass field names to the caller's key names, in the field and in
        the rule's text, so the message speaks the caller's vocabulary throughout.
        """
        rename = rename or {}
        rule = self.rule
        for old, new in rename.items():
            rule = re.sub(rf"\b{re.escape(old)}\b", new, rule)
        return StatsInputError(f"{prefix}{rename.get(self.field, self.field)}", rule)
