"""The one place that turns an engine name into an engine (``models.engine`` or ``--engine``)."""

from __future__ import annotations

import importlib

from kirana.config import ModelSettings
from kirana.models.jobs.engine import ModelEngine

#: engine name -> module defining ``create(settings: ModelSettings) -> ModelEngine``
ENGINES: dict[str, str] = {
    "embedded": "kirana.models.jobs.embedded",
    "spark": "kirana.models.jobs.spark_engine",
}


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be started here (the message says why and what to do)."""


def open_engine(name: str, settings: ModelSettings) -> ModelEngine:
    """A started engine of kind ``name``; the caller closes it."""
    if name not in ENGINES:
        raise EngineUnavailable(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    try:
        module = importlib.import_module(ENGINES[name])
    except ImportError as exc:
        raise EngineUnavailable(
            f"the {name} engine cannot be loaded ({exc}); use `--engine embedded` or install "
            "what it needs"
        ) from exc
    create = getattr(module, "create", None)
    if create is None:
        raise EngineUnavailable(f"{ENGINES[name]} has no create(settings) entry point")
    return create(settings)
