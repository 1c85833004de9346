"""Run gbstats (GrowthBook's stats engine) on JSON cases; used by test_gbstats_parity.py.

This script runs in its own interpreter (``.tools/gbstats-venv``, Python 3.11 with a pinned
gbstats, which needs numpy < 2 and so cannot share the project's environment). It reads a JSON
list of cases on standard input and prints one JSON result per case: the control and treatment
sufficient statistics in Kirana's request keys, and the test settings.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)


def statistic(kind: str, v: dict[str, Any]) -> Any:
    n = int(v["n"])
    if kind == "binomial":
        return ProportionStatistic(n=n, sum=v["sum"])
    if kind == "mean":
        return SampleMeanStatistic(n=n, sum=v["sum"], sum_squares=v["sum_squares"])
    if kind == "ratio":
        return RatioStatistic(
            n=n,
            m_statistic=SampleMeanStatistic(
                n=n, sum=v["numerator_sum"], sum_squares=v["numerator_sum_squares"]
            ),
            d_statistic=SampleMeanStatistic(
                n=n, sum=v["denominator_sum"], sum_squares=v["denominator_sum_squares"]
            ),
            m_d_sum_of_products=v["cross_sum"],
        )
    if kind == "cuped":
        return RegressionAdjustedStatistic(
            n=n,
            post_statistic=SampleMeanStatistic(n=n, sum=v["sum"], sum_squares=v["sum_squares"]),
            pre_statistic=SampleMeanStatistic(
                n=n, sum=v["pre_sum"], sum_squares=v["pre_sum_squares"]
            ),
            post_pre_sum_of_products=v["cross_sum"],
            theta=0,
        )
    if kind == "binomial_cuped":
        return RegressionAdjustedStatistic(
            n=n,
            post_statistic=ProportionStatistic(n=n, sum=v["sum"]),
            pre_statistic=ProportionStatistic(n=n, sum=v["pre_sum"]),
            post_pre_sum_of_products=v["cross_sum"],
            theta=0,
        )
    raise ValueError(kind)


def run(case: dict[str, Any]) -> dict[str, Any]:
    a, b = (statistic(case["metric_type"], v) for v in case["variations"])
    common = {"alpha": case["alpha"], "difference_type": case["difference"]}
    if case["engine"] == "bayesian":
        result = EffectBayesianABTest(a, b, EffectBayesianConfig(**common)).compute_result()
        out = {"chance_to_win": result.chance_to_win, "risk": list(result.risk)}
    elif case["sequential"]:
        config = SequentialConfig(**common, sequential_tuning_parameter=case["tuning_n"])
        result = SequentialTwoSidedTTest(a, b, config).compute_result()
        out = {"p_value": result.p_value}
    else:
        result = TwoSidedTTest(a, b, FrequentistConfig(**common)).compute_result()
        out = {"p_value": result.p_value}
    return out | {
        "expected": result.expected,
        "ci": list(result.ci),
        "stddev": result.uplift.stddev,
        "error": result.error_message,
    }


if __name__ == "__main__":
    cases = json.load(sys.stdin)
    json.dump([run(c) for c in cases], sys.stdout)
