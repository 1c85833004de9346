"""User preferences as affinities to content, from computed traits and content tags.

The ranking takes, per widget or item key, a preference in [0, 1] (see ``rules.UserContext``).
They come from two sides that know nothing of each other: the profile says what a customer
likes (computed traits such as ``favourite_department = "produce"``, or a map of department
scores), and editors tag content with what it is about (``department:produce``,
``aisle:fresh fruits``). A trait is read as tags under a prefix chosen in the settings
(``favourite_department`` -> ``department``), so adding a new kind of preference is a
definition and a setting, not code. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def tag(prefix: str, value: object) -> str:
    """The normalised tag ``prefix:value`` (lower case, single spaces)."""
    return f"{prefix}:{' '.join(str(value).split()).lower()}"


def normalise_tag(value: str) -> str:
    prefix, _, rest = value.partition(":")
    return tag(prefix.strip(), rest) if rest else " ".join(value.split()).lower()


def user_tags(computed: Mapping[str, Any], trait_prefixes: Mapping[str, str]) -> dict[str, float]:
    """Tag strengths in [0, 1] from the user's computed traits.

    A text or number value is one tag at strength 1; a list gives each element strength 1;
    a map of value -> score is scaled by its largest score (so a user's favourite is 1 and the
    rest relative to it; negative scores count as 0). Other values and unknown traits are
    ignored: preferences are a hint, never a reason to fail a request.
    """
    out: dict[str, float] = {}
    for trait, prefix in trait_prefixes.items():
        value = computed.get(trait)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str | int | float):
            pairs = [(value, 1.0)]
        elif isinstance(value, list):
            pairs = [(v, 1.0) for v in value if isinstance(v, str | int | float)]
        elif isinstance(value, dict):
            scores = {k: float(v) for k, v in value.items() if isinstance(v, int | float) and v > 0}
            top = max(scores.values(), default=0.0)
            pairs = [(k, v / top) for k, v in scores.items()] if top > 0 else []
        else:
            continue
        for v, strength in pairs:
            key = tag(prefix, v)
            out[key] = max(out.get(key, 0.0), min(1.0, strength))
    return out


def affinities(
    tags_by_key: Mapping[str, Sequence[str]], strengths: Mapping[str, float]
) -> dict[str, float]:
    """Per content key, the strongest of the user's tag strengths among the key's tags."""
    if not strengths:
        return {}
    out: dict[str, float] = {}
    for key, tags in tags_by_key.items():
        best = max((strengths.get(t, 0.0) for t in tags), default=0.0)
        if best > 0:
            out[key] = best
    return out
