"""``--help`` that lists what a definition may hold, read from the models that validate it.

``kirana destinations create`` and ``kirana syncs create`` take a JSON file; their help lists
every kind and each kind's settings, generated from the pydantic models so that the help
cannot drift from what is accepted. The models are imported only when help is shown, so
``kirana --help`` and every other command stay as fast as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from typer.core import TyperCommand


def settings_line(model: Any) -> str:
    """``url (required), secret (required, secret), timeout_seconds = 10.0``: one model's
    fields by the names a JSON definition uses, required ones first."""
    required, optional = [], []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if field.is_required():
            required.append(f"{key} (required)")
        else:
            default = field.get_default(call_default_factory=True)
            shown = json.dumps(default, default=str)
            optional.append(key if default is None else f"{key} = {shown}")
    return ", ".join(required + optional)


def kinds_help(models: dict[str, Any]) -> str:
    """One line per kind: ``kind: its settings``."""
    return "\n".join(f"{kind}: {settings_line(model)}" for kind, model in models.items())


def command_with_help(describe: Callable[[], str]) -> type[TyperCommand]:
    """A command class whose help ends with ``describe()``, computed when help is shown."""

    class CommandWithKinds(TyperCommand):
        def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            if not getattr(self, "_kinds_added", False):
                self.help = f"{self.help or ''}\n\n{describe()}"
                self._kinds_added = True
            super().format_help(ctx, formatter)

    return CommandWithKinds
