"""Server-side assignment with exposure logging: ``Experiment Viewed`` once per user and experiment.

:meth:`Assigner.assign_for_user` puts a user in every running experiment that admits them (the
same pure :func:`~kirana.experiments.assignment.assign` the SDK payload mirrors) and logs each
new exposure as a Segment track event::

    {"type": "track", "event": "Experiment Viewed", "userId": ..., "anonymousId": ...,
     "properties": {"experiment_id": "checkout", "variation_id": "one-page", ...}}

"Once" is enforced durably by the store's exposure ledger keyed by (experiment, unit), where the
unit is the hash attribute and value the user was bucketed on: the ledger insert and the event
log append happen in one SQLite write transaction, so a restart or a second process never logs
the same user twice. The event's messageId is derived from the experiment run and the unit, so
even the one remaining window (a crash after the append, before the commit) only re-appends an
event the lake loader already drops as a duplicate. A bounded in-process set of known pairs
keeps repeat visitors off SQLite entirely.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kirana.experiments.service import ExperimentService
from kirana.experiments.store import ExperimentStore

EXPOSURE_EVENT = "Experiment Viewed"
KIRANA_SOURCE = "kirana"
_NAMESPACE = uuid.UUID("0b6a3e55-96c1-4f0c-9a57-3f1f2f7d9c42")


@dataclass(frozen=True, slots=True)
class Exposure:
    """A user's variation in one experiment; ``logged`` is true when this call logged it."""

    experiment: str
    variation: str
    variation_index: int
    value: Any
    hash_attribute: str
    hash_value: str
    logged: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment,
            "variation_id": self.variation,
            "variation_index": self.variation_index,
            "value": self.value,
            "hash_attribute": self.hash_attribute,
            "hash_value": self.hash_value,
            "logged": self.logged,
        }


def user_attributes(
    user_id: str | None,
    anonymous_id: str | None,
    attributes: Mapping[str, Any] | None = None,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Attributes to assign on: profile facts, then the caller's attributes, then the ids.

    ``id`` (the default hash attribute) is :func:`hash_id`'s; ``userId`` and
    ``anonymousId`` are set for experiments that hash on either explicitly.
    """
    out: dict[str, Any] = dict(profile or {})
    out.update(attributes or {})
    if user_id:
        out["userId"] = user_id
    if anonymous_id:
        out["anonymousId"] = anonymous_id
    out["id"] = hash_id(attributes, user_id, anonymous_id)
    return out


def hash_id(
    attributes: Mapping[str, Any] | None, user_id: str | None, anonymous_id: str | None
) -> Any:
    """The ``id`` attribute: the caller's own ``id`` when it sends one (as GrowthBook's SDKs
    do), else the user id, else the anonymous id. A stored profile trait named ``id`` (many
    apps send one with identify) never is: it would hash the same person differently in
    the personalise API, which assigns from the profile, than in a caller's assignment."""
    own = (attributes or {}).get("id")
    return own if own is not None else (user_id or anonymous_id)


def exposure_event(
    exposure: Exposure,
    attributes: Mapping[str, Any],
    run: str,
    at: datetime,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The canonical ``Experiment Viewed`` event; ``run`` (the start time) keeps messageIds of
    a re-created experiment with the same key apart from the old one's."""
    unit = f"{exposure.hash_attribute}:{exposure.hash_value}"
    stamp = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    event: dict[str, Any] = {
        "type": "track",
        "event": EXPOSURE_EVENT,
        "messageId": str(uuid.uuid5(_NAMESPACE, f"{exposure.experiment}|{run}|{unit}")),
        "properties": {
            "experiment_id": exposure.experiment,
            "variation_id": exposure.variation,
            "variation_index": exposure.variation_index,
            "hash_attribute": exposure.hash_attribute,
            "hash_value": exposure.hash_value,
        },
        "context": dict(context or {}),
        "timestamp": stamp,
        "receivedAt": stamp,
        "sourceId": KIRANA_SOURCE,
    }
    user_id, anonymous_id = attributes.get("userId"), attributes.get("anonymousId")
    if not user_id and not anonymous_id:
        user_id = exposure.hash_value  # the unit is the only identity we have
    if user_id:
        event["userId"] = str(user_id)
    if anonymous_id:
        event["anonymousId"] = str(anonymous_id)
    return event


class Assigner:
    """Assigns users to running experiments and logs first exposures (see module docstring).

    ``emit`` appends events durably (``Platform.emit``); ``profile`` (optional) returns a
    profile's traits, computed traits and ``audiences`` for targeting; ``suppressed`` (optional)
    says whether a user has been erased, in which case nothing is logged for them.
    """

    def __init__(
        self,
        service: ExperimentService,
        store: ExperimentStore,
        emit: Callable[[list[dict[str, Any]]], None],
        *,
        profile: Callable[[str | None, str | None], Mapping[str, Any] | None] | None = None,
        suppressed: Callable[[str | None, str | None], bool] | None = None,
        cache_size: int = 1_000_000,
    ) -> None:
        self.service = service
        self.store = store
        self._emit = emit
        self._profile = profile
        self._suppressed = suppressed
        self._known: set[tuple[str, str, str]] = set()
        self._known_lock = threading.Lock()
        self._cache_size = cache_size

    def assign(
        self, attributes: Mapping[str, Any], *, now: datetime | None = None
    ) -> list[Exposure]:
        """Pure assignment of ``attributes`` to every running experiment (nothing logged)."""
        registry = self.service.registry()
        out = []
        for key, experiment in registry.experiments.items():
            if experiment.status != "running":
                continue
            result = registry.assign(key, attributes, now=now)
            if result.in_experiment:
                assert result.variation_key is not None and result.variation_index is not None
                out.append(
                    Exposure(
                        experiment=key,
                        variation=result.variation_key,
                        variation_index=result.variation_index,
                        value=result.value,
                        hash_attribute=result.hash_attribute,
                        hash_value=result.hash_value,
                    )
                )
        return out

    def assign_for_user(
        self,
        attributes: Mapping[str, Any],
        *,
        log: bool = True,
        context: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[Exposure]:
        """Assign and, unless ``log`` is false, log the exposures not logged before.

        ``attributes`` carry ``userId`` and/or ``anonymousId`` (and ``id``; see
        :func:`user_attributes`); when any running experiment targets on attributes or
        audiences, the stored profile's traits and audiences fill in what the caller did not.
        """
        attrs = dict(attributes)
        user_id, anonymous_id = attrs.get("userId"), attrs.get("anonymousId")
        if self._profile is not None and self._needs_profile() and (user_id or anonymous_id):
            profile = self._profile(user_id, anonymous_id) or {}
            attrs = {**profile, **attrs}
        attrs["id"] = hash_id(attributes, user_id, anonymous_id)
        exposures = self.assign(attrs, now=now)
        if not log or not exposures:
            return exposures
        if self._suppressed is not None and self._suppressed(user_id, anonymous_id):
            return exposures
        return self._log(exposures, attrs, context)

    def log_exposures(
        self,
        exposures: list[Exposure],
        attributes: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> list[Exposure]:
        """Log the first exposure of each of ``exposures`` (for callers that assign with
        :meth:`assign` and expose only some of the result, like the personalise API)."""
        user_id, anonymous_id = attributes.get("userId"), attributes.get("anonymousId")
        if not exposures or (
            self._suppressed is not None and self._suppressed(user_id, anonymous_id)
        ):
            return exposures
        return self._log(exposures, attributes, context)

    def forget_known(self) -> None:
        """Drop the in-process set of logged units (after an erasure: it holds their ids)."""
        with self._known_lock:
            self._known.clear()

    def _needs_profile(self) -> bool:
        return any(
            e.status == "running" and (e.targeting or e.audiences)
            for e in self.service.registry().experiments.values()
        )

    def _log(
        self,
        exposures: list[Exposure],
        attributes: Mapping[str, Any],
        context: Mapping[str, Any] | None,
    ) -> list[Exposure]:
        keys = {(x.experiment, f"{x.hash_attribute}:{x.hash_value}"): x for x in exposures}
        # the run (start time) is part of the cache key: a deleted and re-created experiment
        # with the same key is a new run whose ledger starts empty
        runs = self.service.runs()
        with self._known_lock:
            fresh = [k for k in keys if (runs.get(k[0], ""), *k) not in self._known]
        if not fresh:
            return exposures
        stored = self.store.known_exposures(fresh)
        fresh = [k for k in fresh if k not in stored]
        logged: set[tuple[str, str]] = set()
        if fresh:
            at = datetime.now(UTC)

            def emit(rows: list[tuple[str, str, str]]) -> None:
                self._emit(
                    [
                        exposure_event(keys[(e, u)], attributes, runs.get(e, ""), at, context)
                        for e, u, _ in rows
                    ]
                )

            new = self.store.record_exposures(
                [(e, u, keys[(e, u)].variation) for e, u in fresh], emit
            )
            logged = {(e, u) for e, u, _ in new}
        with self._known_lock:
            if len(self._known) > self._cache_size:
                self._known.clear()
            self._known.update((runs.get(e, ""), e, u) for e, u in keys)
        return [
            _with_logged(x) if (x.experiment, f"{x.hash_attribute}:{x.hash_value}") in logged else x
            for x in exposures
        ]


def _with_logged(exposure: Exposure) -> Exposure:
    return Exposure(
        exposure.experiment,
        exposure.variation,
        exposure.variation_index,
        exposure.value,
        exposure.hash_attribute,
        exposure.hash_value,
        logged=True,
    )


__all__ = [
    "EXPOSURE_EVENT",
    "Assigner",
    "Exposure",
    "exposure_event",
    "hash_id",
    "user_attributes",
]
