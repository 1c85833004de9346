"""Hashing and bucketing: properties, distribution, and bit-for-bit agreement with the SDK's
own functions (used here only as an oracle)."""

from __future__ import annotations

import itertools
import math

import pytest
from growthbook import core as gb_core
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from kirana.experiments.assignment import (
    Experiment,
    assign,
    bucket_ranges,
    choose_variation,
    fnv1a32,
    gb_hash,
    in_namespace,
    in_range,
)
from kirana.experiments.assignment.hashing import hash_string, js_number_to_string

ids = st.text(min_size=1, max_size=40)
seeds = st.text(max_size=20)


@st.composite
def weight_vectors(draw: st.DrawFn) -> list[float]:
    raw = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=6).filter(lambda r: sum(r)))
    total = sum(raw)
    return [r / total for r in raw]


def test_fnv1a32_known_values() -> None:
    """Published FNV-1a 32-bit test vectors (ASCII, where UTF-16 units equal bytes)."""
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


@settings(max_examples=300, deadline=None)
@given(ids)
def test_fnv1a32_matches_sdk_over_utf16(text: str) -> None:
    assert fnv1a32(text) == gb_core.fnv1a32(text)


@settings(max_examples=300, deadline=None)
@given(seeds, ids, st.sampled_from([1, 2]))
def test_hash_in_unit_interval_deterministic_and_sdk_equal(seed: str, value: str, v: int) -> None:
    n = gb_hash(seed, value, v)
    assert 0 <= n < 1
    assert n == gb_hash(seed, value, v)
    assert n == gb_core.gbhash(seed, value, v)
    buckets = 1000 if v == 1 else 10000
    assert round(n * buckets) / buckets == n  # exactly one of 1,000 (v1) or 10,000 (v2) buckets


def test_v2_differs_from_v1() -> None:
    pairs = [(gb_hash("exp", f"user-{i}", 1), gb_hash("exp", f"user-{i}", 2)) for i in range(2000)]
    assert sum(a == b for a, b in pairs) < 20
    assert sum(abs(a - b) < 0.01 for a, b in pairs) < 100  # not merely a rescaling


def test_unknown_hash_version_refused() -> None:
    with pytest.raises(ValueError, match="hash version"):
        gb_hash("s", "v", 3)


@settings(max_examples=300, deadline=None)
@given(weight_vectors(), st.floats(0, 1))
def test_bucket_ranges_partition_coverage_by_weight(weights: list[float], coverage: float) -> None:
    ranges = bucket_ranges(len(weights), coverage, weights)
    assert ranges == gb_core.getBucketRanges(len(weights), coverage, weights)
    assert len(ranges) == len(weights)
    start_of_weight = 0.0
    for (start, end), w in zip(ranges, weights, strict=True):
        assert start == pytest.approx(start_of_weight, abs=1e-12)  # each starts at its weight
        assert end - start == pytest.approx(coverage * w, abs=1e-12)  # covering coverage*w
        start_of_weight += w
    for (_, end), (nxt, _) in itertools.pairwise(ranges):
        assert end <= nxt + 1e-12  # disjoint, in order
    covered = sum(e - s for s, e in ranges)
    assert covered == pytest.approx(coverage, abs=1e-9)
    assert ranges[-1][1] <= 1 + 1e-12


def test_bucket_ranges_fall_back_to_equal_weights_like_the_sdk() -> None:
    for weights in ([0.5], [0.9, 0.9], [-0.5, 1.5], None):
        assert bucket_ranges(2, 1, weights) == gb_core.getBucketRanges(2, 1, weights)
    assert bucket_ranges(2, 1.7) == [(0, 0.5), (0.5, 1.0)]


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1, exclude_max=True), weight_vectors(), st.floats(0, 1))
def test_choose_variation_matches_sdk(n: float, weights: list[float], coverage: float) -> None:
    ranges = bucket_ranges(len(weights), coverage, weights)
    index = choose_variation(n, ranges)
    assert index == gb_core.chooseVariation(n, ranges)
    assert index == -1 or in_range(n, ranges[index])


@settings(max_examples=200, deadline=None)
@given(ids, st.text(min_size=1, max_size=10), st.floats(0, 1), st.floats(0, 1))
def test_in_namespace_matches_sdk(user: str, ns: str, a: float, b: float) -> None:
    start, end = min(a, b), max(a, b)
    assert in_namespace(user, ns, start, end) == gb_core.inNamespace(user, (ns, start, end))
    assert in_namespace(user, ns, start, end) == (start <= gb_hash("__" + ns, user, 1) < end)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(10**25), 10**25),
        st.sampled_from([1e21, 1e-7, 123e-20, 0.000001, 5e-324, 2**53 + 1]),
    )
)
def test_numbers_hash_as_javascript_text(x: float) -> None:
    assert js_number_to_string(x) == gb_core._js_number_to_string(x)
    expected = gb_core._hash_string(x) if gb_core._is_hashable(x) else ""
    assert hash_string(x) == expected


def test_weights_distribution_and_chi_square() -> None:
    """100k ids with weights [0.2, 0.3, 0.5] land within ±1% of the weights."""
    exp = Experiment(
        key="dist",
        variations=[{"key": k} for k in ("a", "b", "c")],
        weights=[0.2, 0.3, 0.5],
        status="running",
    )
    counts = [0, 0, 0]
    n = 100_000
    for i in range(n):
        a = assign(exp, {"id": f"visitor-{i}"})
        assert a.variation_index is not None
        counts[a.variation_index] += 1
    shares = [c / n for c in counts]
    for share, w in zip(shares, [0.2, 0.3, 0.5], strict=True):
        assert abs(share - w) < 0.01, shares
    chi = sps.chisquare(counts, [w * n for w in (0.2, 0.3, 0.5)])
    assert chi.pvalue > 1e-3, (counts, chi)


def test_coverage_and_namespace_shares() -> None:
    exp = Experiment(
        key="cov",
        variations=[{"key": "a"}, {"key": "b"}],
        coverage=0.4,
        namespace=("ns", 0.25, 0.75),
        hash_version=1,
        status="running",
    )
    n = 40_000
    reasons = [assign(exp, {"id": f"id{i}"}).reason for i in range(n)]
    in_ns = sum(r != "namespace" for r in reasons) / n
    assigned = sum(r == "assigned" for r in reasons) / n
    assert math.isclose(in_ns, 0.5, abs_tol=0.015)
    assert math.isclose(assigned, 0.5 * 0.4, abs_tol=0.015)
