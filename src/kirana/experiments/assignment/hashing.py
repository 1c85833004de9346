"""Deterministic hashing and bucketing, bit-for-bit compatible with GrowthBook's SDKs.

Kirana assigns users on the server while apps may assign the same users in a GrowthBook SDK
from :func:`kirana.experiments.assignment.payload.features_payload`; both must put every user
in the same variation, so every number here is computed the way the SDKs compute it, down to
the order of floating-point additions in :func:`bucket_ranges`:

* ``fnv1a32`` runs FNV-1a (32 bit) over UTF-16 code units, because the reference SDK is
  JavaScript and hashes ``charCodeAt`` values; ASCII strings take a fast byte path.
* Hash version 1: ``(fnv1a32(value + seed) % 1000) / 1000``.
* Hash version 2: ``(fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000``; the double hash
  removes v1's correlation between experiments whose seeds share a prefix.
* Namespaces hash ``"__" + namespace_id`` as the seed with version 1.
* An attribute identifies a user only if it is a non-empty string or a finite non-zero number
  (booleans never), and numbers are turned into text the way JavaScript's ``String()`` does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF

HASH_VERSIONS = (1, 2)


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit hash of ``text`` taken over its UTF-16 code units (as JavaScript sees it)."""
    h = _FNV_OFFSET
    if text.isascii():
        units: Sequence[int] = text.encode("ascii")
    else:
        data = text.encode("utf-16-le", "surrogatepass")
        units = struct.unpack(f"<{len(data) // 2}H", data)
    for unit in units:
        h = ((h ^ unit) * _FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str, version: int) -> float:
    """GrowthBook's bucketing hash: a number in [0, 1) for ``value`` under ``seed``.

    Version 1 has 1,000 buckets and version 2 has 10,000; unknown versions raise because a
    silently different hash would silently reassign users.
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    raise ValueError(f"unsupported hash version {version!r}; expected one of {HASH_VERSIONS}")


def in_range(n: float, bounds: tuple[float, float]) -> bool:
    """Half-open membership, ``start <= n < end``: adjacent ranges never share a bucket."""
    return bounds[0] <= n < bounds[1]


def equal_weights(num_variations: int) -> list[float]:
    """``1 / n`` per variation, computed exactly as the SDKs do so the ranges match to the bit."""
    if num_variations < 1:
        return []
    return [1 / num_variations for _ in range(num_variations)]


def _usable_weights(weights: Sequence[float] | None, num_variations: int) -> bool:
    if weights is None or len(weights) != num_variations:
        return False
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float):
            return False
        if not math.isfinite(w) or w < 0:
            return False
    return 0.99 <= sum(weights) <= 1.01


def bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """GrowthBook's ``getBucketRanges``: one ``[start, start + coverage * weight)`` per variation.

    Each range starts where the previous variation's *full* weight ended, so lowering coverage
    shrinks every range from its top and a user who is in keeps their variation when coverage
    grows. The SDKs fall back to equal weights when the weights are unusable (wrong length,
    negative, or not summing to 1 within 1%); Kirana's definitions refuse such weights, but the
    fallback is mirrored so the function agrees with the SDKs on any input.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    ws = list(weights) if _usable_weights(weights, num_variations) else None
    if ws is None:
        ws = equal_weights(num_variations)
    cumulative: float = 0
    ranges: list[tuple[float, float]] = []
    for w in ws:
        start = cumulative
        cumulative += w
        ranges.append((start, start + coverage * w))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """Index of the range holding ``n``, or -1 when ``n`` falls in a coverage gap."""
    for index, bounds in enumerate(ranges):
        if in_range(n, bounds):
            return index
    return -1


def in_namespace(hash_value: str, namespace_id: str, start: float, end: float) -> bool:
    """Whether a user falls in ``[start, end)`` of a namespace (hash v1 of ``"__" + id``).

    The namespace hash ignores experiment seeds, so experiments holding disjoint ranges of the
    same namespace are mutually exclusive.
    """
    n = gb_hash("__" + namespace_id, hash_value, 1)
    return start <= n < end


def is_hashable(value: Any) -> bool:
    """Whether an attribute value can identify a user: a non-empty string or a finite non-zero
    number. Booleans and numbers beyond a double's range never do."""
    if isinstance(value, str):
        return value != ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return value != 0 and math.isfinite(float(value))
    except OverflowError:
        return False


def js_number_to_string(x: float) -> str:
    """Format a number as JavaScript's ``String(number)`` does (ECMAScript Number::toString).

    Python's ``repr`` already yields the shortest digits that round-trip, as JavaScript does;
    only the layout (fixed notation for decimal exponents -6..21, ``1e+21`` style otherwise)
    differs and is applied here.
    """
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    if math.isinf(x):
        return "Infinity"
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    assert isinstance(exponent, int)
    exponent += len(digits) - len(stripped)
    k = len(stripped)
    n = exponent + k  # x = 0.d1...dk * 10**n
    if k <= n <= 21:
        return stripped + "0" * (n - k)
    if 0 < n <= 21:
        return stripped[:n] + "." + stripped[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + stripped
    mantissa = stripped[0] + ("." + stripped[1:] if k > 1 else "")
    return f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"


def hash_string(value: Any) -> str:
    """The text an identifying attribute is hashed as; ``""`` for a value that cannot identify."""
    if not is_hashable(value):
        return ""
    if isinstance(value, str):
        return value
    return js_number_to_string(value)


def resolve_hash_value(
    attributes: Mapping[str, Any], attribute: str, fallback: str | None = None
) -> tuple[str, str]:
    """The attribute actually used to bucket a user and its text (``""`` when neither
    ``attribute`` nor ``fallback`` identifies the user)."""
    if is_hashable(attributes.get(attribute)):
        return attribute, hash_string(attributes[attribute])
    if fallback and is_hashable(attributes.get(fallback)):
        return fallback, hash_string(attributes[fallback])
    return attribute, ""
