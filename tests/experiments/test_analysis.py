"""``analyze``: JSON in, JSON out, the same numbers as the underlying tests, errors by field."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from kirana.experiments.stats import (
    CupedStats,
    RatioStats,
    SampleStats,
    StatsInputError,
    analyze,
    bayesian_test,
    cuped_moments,
    frequentist_test,
    sequential_test,
)
from kirana.experiments.stats.moments import binomial_moments


def _binomial(n: int, conversions: int):
    """The default binomial reduction: population variance p(1 - p), as gbstats."""
    return binomial_moments(SampleStats.binomial(n, conversions))


BINOMIAL = {
    "metric_type": "binomial",
    "variations": [
        {"name": "control", "n": 2000, "sum": 180},
        {"name": "big-button", "n": 2100, "sum": 231},
        {"name": "small-button", "n": 1950, "sum": 170},
    ],
}
RATIO_VARIATIONS = [
    {
        "name": name,
        "n": 500,
        "numerator_sum": num,
        "numerator_sum_squares": num * num / 500 * 3,
        "denominator_sum": 1500,
        "denominator_sum_squares": 5400,
        "cross_sum": num * 3 * 1.05,
    }
    for name, num in (("control", 30_000.0), ("treatment", 32_000.0))
]


def roundtrip(result: dict) -> dict:
    """The result must be strict JSON (no NaN / Infinity)."""
    return json.loads(json.dumps(result, allow_nan=False))


def test_single_metric_frequentist_matches_the_engine() -> None:
    out = roundtrip(analyze(BINOMIAL))
    assert out["engine"] == "frequentist" and out["comparisons"] == 2
    control, big, _ = out["variations"]
    assert control == {"name": "control", "n": 2000, "mean": 0.09}
    ref = frequentist_test(_binomial(2000, 180), _binomial(2100, 231))
    assert big["p_value"] == pytest.approx(ref.p_value, rel=1e-12)
    assert big["absolute"]["ci"] == pytest.approx([ref.absolute.ci_lower, ref.absolute.ci_upper])
    assert big["relative"]["estimate"] == pytest.approx(231 / 2100 / 0.09 - 1)
    assert big["p_value_adjusted"] == big["p_value"] and "ci_adjusted" not in big
    assert big["p_value"] < 0.05 and big["significant"] is True
    assert out["srm"]["mismatch"] is False
    assert out["srm"]["expected"] == pytest.approx([6050 / 3] * 3)


def test_bayesian_and_sequential_outputs() -> None:
    bayes = roundtrip(analyze({**BINOMIAL, "engine": "bayesian"}))
    ref = bayesian_test(_binomial(2000, 180), _binomial(2100, 231))
    big = bayes["variations"][1]
    assert big["chance_to_beat_control"] == pytest.approx(ref.chance_to_beat_control)
    assert big["risk"] == pytest.approx(
        {"treatment": ref.risk_treatment, "control": ref.risk_control}
    )
    assert big["relative"]["method"] == "linear" and "p_value" not in big
    seq = roundtrip(analyze({**BINOMIAL, "sequential": True, "sequential_tuning_n": 8000}))
    ref_seq = sequential_test(_binomial(2000, 180), _binomial(2100, 231), tuning_n=8000)
    assert seq["variations"][1]["p_value"] == pytest.approx(ref_seq.p_value)
    assert seq["sequential_tuning_n"] == 8000


def test_prior_reaches_the_bayesian_engine() -> None:
    request = {**BINOMIAL, "engine": "bayesian", "prior": {"relative": {"variance": 0.01}}}
    flat = analyze({**BINOMIAL, "engine": "bayesian"})["variations"][1]["relative"]["estimate"]
    shrunk = analyze(request)["variations"][1]["relative"]["estimate"]
    assert 0 < shrunk < flat


def test_multi_metric_holm_spans_every_comparison() -> None:
    ratio = {"name": "revenue_per_order", "metric_type": "ratio", "variations": RATIO_VARIATIONS}
    conv = {"name": "conversion", **BINOMIAL}
    out = roundtrip(analyze({"correction": "holm", "metrics": [conv, ratio]}))
    assert out["comparisons"] == 3
    entries = [v for m in out["metrics"] for v in m["variations"][1:]]
    raw = [e["p_value"] for e in entries]
    expected = multipletests(raw, method="holm")[1]
    assert [e["p_value_adjusted"] for e in entries] == pytest.approx(expected.tolist())
    for e in entries:
        lift = e["absolute"]
        assert lift["p_value_adjusted"] == e["p_value_adjusted"]
        factor = lift["p_value_adjusted"] / lift["p_value"]  # Holm's step-down multiplier
        assert lift["ci_adjusted_alpha"] == pytest.approx(0.05 / factor)
        lo, hi = lift["ci_adjusted"]
        assert lo < lift["ci"][0] and hi > lift["ci"][1]  # wider
        assert (lo > 0 or hi < 0) == lift["significant"]
    rev = out["metrics"][1]
    assert rev["name"] == "revenue_per_order"
    stats = [
        RatioStats(
            v["n"],
            v["numerator_sum"],
            v["numerator_sum_squares"],
            v["denominator_sum"],
            v["denominator_sum_squares"],
            v["cross_sum"],
        )
        for v in RATIO_VARIATIONS
    ]
    assert rev["variations"][1]["p_value"] == pytest.approx(frequentist_test(*stats).p_value)
    assert rev["variations"][0]["mean"] == pytest.approx(20.0)


def test_cuped_request_reports_theta_and_adjusted_means() -> None:
    rng = np.random.default_rng(70)
    variations, groups = [], []
    for k in range(2):
        x = rng.normal(5, 2, 600)
        y = 0.7 * x + rng.normal(0.1 * k, 1, 600)
        s = [y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum()]
        groups.append(CupedStats(600, *s))
        keys = ["sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum"]
        variations.append({"n": 600, **dict(zip(keys, map(float, s), strict=True))})
    request = {"metric_type": "cuped", "cuped_theta": "within", "variations": variations}
    out = roundtrip(analyze(request))
    moments = cuped_moments(groups)
    assert out["theta"] == pytest.approx(0.7, abs=0.05)
    assert out["variations"][1]["adjusted_mean"] == pytest.approx(moments[1].mean)
    assert out["variations"][1]["p_value"] == pytest.approx(
        frequentist_test(*groups).p_value, rel=1e-12
    )


def test_srm_uses_the_configured_weights() -> None:
    request = {
        "metric_type": "binomial",
        "weights": [0.2, 0.8],
        "variations": [{"n": 2000, "sum": 10}, {"n": 8000, "sum": 40}],
    }
    assert analyze(request)["srm"]["mismatch"] is False
    request["weights"] = [0.5, 0.5]
    assert analyze(request)["srm"]["mismatch"] is True


def test_undefined_relative_lift_is_null() -> None:
    out = roundtrip(
        analyze(
            {"metric_type": "binomial", "variations": [{"n": 100, "sum": 0}, {"n": 100, "sum": 3}]}
        )
    )
    rel = out["variations"][1]["relative"]
    assert rel["estimate"] is None and rel["ci"] == [None, None]
    assert out["variations"][1]["absolute"]["estimate"] == pytest.approx(0.03)


def _error(request: dict) -> str:
    with pytest.raises(StatsInputError) as info:
        analyze(request)
    return str(info.value)


def _with(path: list, value: object) -> dict:
    request = copy.deepcopy(BINOMIAL)
    target = request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return request


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_with(["variations", 1, "sum"], 2200), "variations[1].sum: conversions must be between"),
        (_with(["variations", 2, "n"], 1), "variations[2].n: must be at least 2"),
        (_with(["variations", 0, "sum_squares"], 5), "variations[0].sum_squares: must equal sum"),
        (_with(["variations", 1, "sun"], 5), "variations[1].sun: unknown field"),
        (_with(["variations", 1, "name"], "control"), "variations: variation names must be"),
        (_with(["variations"], [{"n": 10, "sum": 1}]), "variations: must be a list of at least"),
        (_with(["engine"], "bayes"), "engine: must be one of 'frequentist', 'bayesian'"),
        (_with(["alpha"], 1.5), "alpha: must be between 0 and 1 exclusive"),
        (_with(["metric_type"], "median"), "metric_type: must be one of"),
        (_with(["weights"], [1, 1]), "weights: has 2 entries but variations has 3"),
        (_with(["weights"], [1, 0, 1]), "weights[1]: must be between 0 and inf"),
        (_with(["sequential"], "yes"), "sequential: must be true or false"),
        (_with(["correction"], "sidak"), "correction: must be one of"),
        ({**BINOMIAL, "engine": "bayesian", "sequential": True}, "sequential: is only available"),
        ({**BINOMIAL, "engine": "bayesian", "correction": "bh"}, "correction: applies to engine"),
        ({**BINOMIAL, "prior": {"relative": {"variance": 1}}}, "prior: is only used by engine"),
        ({**BINOMIAL, "metrics": []}, "metrics: give either"),
        ([1, 2], "request: must be a JSON object"),
    ],
)
def test_invalid_requests_name_the_field(request_: dict, message: str) -> None:
    assert _error(request_).startswith(message)


def test_nested_errors_use_the_request_key_names() -> None:
    bad_ratio = copy.deepcopy(RATIO_VARIATIONS)
    bad_ratio[1]["denominator_sum_squares"] = 1.0
    message = _error({"metrics": [BINOMIAL, {"metric_type": "ratio", "variations": bad_ratio}]})
    assert message.startswith(
        "metrics[1].variations[1].denominator_sum_squares: variance would be negative "
        "(denominator_sum_squares=1 < denominator_sum**2/n=4500)"
    )
    cuped = [
        {"n": 10, "sum": 5, "sum_squares": 5, "pre_sum": 5, "pre_sum_squares": 5, "cross_sum": 5},
        {"n": 10, "sum": 5, "sum_squares": 5, "pre_sum": 5, "pre_sum_squares": 1, "cross_sum": 5},
    ]
    assert _error({"metric_type": "cuped", "variations": cuped}).startswith(
        "variations[1].pre_sum_squares: variance would be negative"
    )
    cuped[1] |= {"pre_sum_squares": 5, "sum_squares": 1}
    assert _error({"metric_type": "cuped", "variations": cuped}) == (
        "variations[1].sum_squares: variance would be negative (sum_squares=1 < sum**2/n=2.5)"
    )
    del cuped[0]["cross_sum"]
    assert _error({"metric_type": "cuped", "variations": cuped}) == (
        "variations[0].cross_sum: is required"
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("binomial_variance", "unbiased"),
        ("sequential_mixture", "fast"),
        ("bayesian_relative", "log"),
        ("cuped_theta", 1),
    ],
)
def test_refinement_options_are_named_and_validated(option: str, value: object) -> None:
    out = analyze(BINOMIAL)
    defaults = {
        "binomial_variance": "population",
        "sequential_mixture": "howard",
        "bayesian_relative": "linear",
        "cuped_theta": "pair",
    }
    assert out[option] == defaults[option]  # echoed, with the gbstats-equal default
    with pytest.raises(StatsInputError, match=rf"^{option}: must be one of"):
        analyze({**BINOMIAL, option: value})


def test_binomial_variance_option_switches_to_the_unbiased_variance() -> None:
    population = analyze(BINOMIAL)["variations"][1]["absolute"]["se"]
    sample = analyze({**BINOMIAL, "binomial_variance": "sample"})["variations"][1]["absolute"]
    ref = frequentist_test(SampleStats.binomial(2000, 180), SampleStats.binomial(2100, 231))
    assert sample["se"] == pytest.approx(ref.absolute.se, rel=1e-12)
    assert population < sample["se"]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"pre_sum": 600}, "variations[1].pre_sum", "0/1 covariate sums must be between 0 and n"),
        ({"sum_squares": 7}, "variations[1].sum_squares", "must equal sum"),
        ({"pre_sum_squares": 1}, "variations[1].pre_sum_squares", "must equal pre_sum"),
    ],
)
def test_binomial_cuped_checks_its_values_are_zero_or_one(
    change: dict, field: str, rule: str
) -> None:
    arm = {"n": 500, "sum": 60, "pre_sum": 100, "cross_sum": 30}
    request = {"metric_type": "binomial_cuped", "variations": [arm, {**arm, **change}]}
    with pytest.raises(StatsInputError) as caught:
        analyze(request)
    assert caught.value.field == field and rule in str(caught.value)
    assert analyze({**request, "variations": [arm, arm]})["variations"][1]["theta"] is not None
