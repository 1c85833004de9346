"""Who an erasure request names, and every identifier of theirs Kirana can find.

A request names a person by one identifier, with its type or without. A typed identifier
stands for itself; an untyped one for the profile that holds it under the first type (in
``ID_TYPES`` order) that any profile has, else — nobody has it yet — for the value under
every type, so that it is suppressed whatever it turns out to be.

A person's identifiers are then *expanded* through the profile store: every identity of a
profile that holds one of them. Erasure expands again after the consumers have caught up
(events acknowledged before the erasure may link more identifiers), until nothing new is
found. Only the identity graph expands a person, never a bare co-occurrence in an event:
the graph's merge protection (a shared tablet stays with its first customer) is what keeps
an erasure from reaching somebody else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kirana.identity.rules import Identifier
from kirana.identity.store import SQLProfileStore
from kirana.profiles.view import ID_TYPES


@dataclass(frozen=True)
class ErasureTarget:
    """One person to erase, as the request names them."""

    identifier: str
    type: str | None = None

    def candidates(self) -> list[Identifier]:
        types = [self.type] if self.type else list(ID_TYPES)
        return [(t, self.identifier.lower() if t == "email" else self.identifier) for t in types]


@dataclass
class TargetState:
    """What an erasure knows of one target so far."""

    target: ErasureTarget
    #: every identifier to erase and suppress for this target
    identities: set[Identifier] = field(default_factory=set)
    #: profiles found holding them (may be empty)
    profile_ids: set[str] = field(default_factory=set)


def resolve(profiles: SQLProfileStore, targets: list[ErasureTarget]) -> list[TargetState]:
    """Each target's starting identifiers: its profile's identities, or its candidates."""
    candidates = {c for t in targets for c in t.candidates()}
    holders = profiles.profile_ids(candidates)
    states = []
    for target in targets:
        state = TargetState(target)
        held = [c for c in target.candidates() if c in holders]
        if held:
            state.identities.add(held[0])  # the first type any profile has
        else:
            state.identities.update(target.candidates())
        states.append(state)
    expand(profiles, states)
    return states


def expand(profiles: SQLProfileStore, states: list[TargetState]) -> bool:
    """Add every identity of the profiles holding a target's identifiers; True if any grew."""
    everything = {i for s in states for i in s.identities}
    holders = profiles.profile_ids(everything)
    members: dict[str, set[Identifier]] = {}
    for pid in set(holders.values()):
        profile = profiles.profile_by_id(pid)
        members[pid] = set(profile.identities) if profile is not None else set()
    grew = False
    for state in states:
        for identifier in list(state.identities):
            pid = holders.get(identifier)
            if pid is None:
                continue
            state.profile_ids.add(pid)
            new = members[pid] - state.identities
            if new:
                state.identities |= new
                grew = True
    return grew
