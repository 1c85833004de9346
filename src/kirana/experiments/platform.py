"""The experimentation services of a running :class:`~kirana.runtime.Platform`, built once per
process, and the one call other serving code needs: :func:`assign_for_user`.

Everything shared between processes lives in ``<state_dir>/experiments.sqlite``; the objects
here only cache (the registry is rebuilt when the stored revision moves), so the API, a worker
and the CLI can all run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kirana.experiments.exposures import Assigner, Exposure, user_attributes
from kirana.experiments.service import ExperimentService
from kirana.experiments.store import ExperimentStore

if TYPE_CHECKING:
    from kirana.runtime import Platform

STORE_FILE = "experiments.sqlite"


@dataclass
class Experiments:
    store: ExperimentStore
    service: ExperimentService
    assigner: Assigner

    def close(self) -> None:
        self.store.close()


def _profile_lookup(platform: Platform):
    def lookup(user_id: str | None, anonymous_id: str | None) -> dict[str, Any] | None:
        profiles = platform.profiles
        for id_type, value in (("user_id", user_id), ("anonymous_id", anonymous_id)):
            if not value:
                continue
            profile = profiles.profile((id_type, str(value)))
            if profile is not None:
                return {
                    **profile.traits,
                    **profiles.computed_values(profile.profile_id),
                    "audiences": profiles.audiences_of(profile.profile_id),
                }
        return None

    return lookup


def experiments(platform: Platform) -> Experiments:
    """This process's experimentation services for ``platform`` (built on first use)."""

    def build() -> Experiments:
        store = ExperimentStore(platform.settings.state_dir / STORE_FILE)
        service = ExperimentService(
            store,
            known_audiences=lambda: {d.name for d in platform.profiles.definitions("audience")},
        )
        assigner = Assigner(
            service,
            store,
            platform.emit,
            profile=_profile_lookup(platform),
            suppressed=platform.suppression,
        )
        return Experiments(store, service, assigner)

    return platform.service("experiments", build)


def assign_for_user(
    platform: Platform,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    log: bool = True,
) -> list[Exposure]:
    """Variations for one user in every running experiment, logging first exposures.

    For the personalise API and any other server-side caller: give the user's ids (at least
    one) and any attributes targeting uses; profile traits and audiences are looked up when a
    running experiment targets on them. Returns one :class:`Exposure` per experiment the user is
    in (``exposure.as_dict()`` is JSON-ready).
    """
    if not user_id and not anonymous_id:
        raise ValueError("assign_for_user needs user_id or anonymous_id")
    attrs = user_attributes(user_id, anonymous_id, attributes)
    return experiments(platform).assigner.assign_for_user(attrs, log=log, context=context)


__all__ = ["Experiments", "assign_for_user", "experiments"]
