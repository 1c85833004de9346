"""Welch t-tests agree with scipy and statsmodels; CUPED equals the OLS treatment coefficient."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from kirana.experiments.stats import (
    CupedStats,
    RatioStats,
    SampleStats,
    cuped_moments,
    frequentist_test,
    pooled_theta,
)


def sample_stats(y: np.ndarray) -> SampleStats:
    return SampleStats(y.size, y.sum(), np.square(y).sum())


def cuped_stats(y: np.ndarray, x: np.ndarray) -> CupedStats:
    return CupedStats(y.size, y.sum(), (y * y).sum(), x.sum(), (x * x).sum(), (x * y).sum())


@pytest.mark.parametrize("seed", range(5))
def test_welch_matches_scipy_and_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = rng.lognormal(0.0, 1.0, rng.integers(20, 400))
    t = rng.lognormal(0.1, 1.3, rng.integers(20, 400))
    res = frequentist_test(sample_stats(c), sample_stats(t), alpha=0.1)
    ref = sps.ttest_ind_from_stats(
        t.mean(), t.std(ddof=1), t.size, c.mean(), c.std(ddof=1), c.size, equal_var=False
    )
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.absolute.estimate / res.absolute.se == pytest.approx(ref.statistic, rel=1e-9)
    lo, hi = CompareMeans(DescrStatsW(t), DescrStatsW(c)).tconfint_diff(alpha=0.1, usevar="unequal")
    assert (res.absolute.ci_lower, res.absolute.ci_upper) == pytest.approx((lo, hi), rel=1e-9)


def test_hand_checked_welch_and_relative_lift() -> None:
    """Independent numpy arithmetic, and the numbers written out to 5 decimals."""
    c = np.array([3.1, 4.5, 2.2, 5.0, 3.8, 4.1])
    t = np.array([4.0, 5.2, 3.9, 6.1, 4.4, 5.5, 4.9])
    res = frequentist_test(sample_stats(c), sample_stats(t))
    vc, vt = c.var(ddof=1) / c.size, t.var(ddof=1) / t.size
    df = (vc + vt) ** 2 / (vc**2 / (c.size - 1) + vt**2 / (t.size - 1))
    se = np.sqrt(vc + vt)
    q = sps.t.ppf(0.975, df)
    diff = t.mean() - c.mean()
    assert res.df == pytest.approx(df, rel=1e-12)
    assert res.absolute.ci_upper == pytest.approx(diff + q * se, rel=1e-12)
    assert res.absolute.se == pytest.approx(se, rel=1e-12)
    assert res.p_value == pytest.approx(2 * sps.t.sf(diff / se, df), rel=1e-9)
    got = (res.absolute.estimate, res.absolute.se, res.df, res.p_value)
    assert np.round(got, 5).tolist() == [1.07381, 0.51253, 9.61992, 0.06367]
    assert np.round([res.absolute.ci_lower, res.absolute.ci_upper], 5).tolist() == [
        -0.07432,
        2.22194,
    ]
    # relative: delta method on mean_t / mean_c
    se_rel = np.sqrt(vt / c.mean() ** 2 + t.mean() ** 2 * vc / c.mean() ** 4)
    assert res.relative.se == pytest.approx(se_rel, rel=1e-12)
    rel = res.relative
    assert np.round([rel.estimate, rel.se, rel.ci_lower, rel.ci_upper], 5).tolist() == [
        0.28383,
        0.16125,
        -0.0774,
        0.64506,
    ]


def test_binomial_matches_welch_on_the_zero_one_data() -> None:
    c = np.r_[np.ones(180), np.zeros(1820)]
    t = np.r_[np.ones(231), np.zeros(1869)]
    res = frequentist_test(SampleStats.binomial(2000, 180), SampleStats.binomial(2100, 231))
    ref = sps.ttest_ind(t, c, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_zero_variance_arms_give_defined_answers() -> None:
    none = frequentist_test(SampleStats.binomial(100, 0), SampleStats.binomial(100, 0))
    assert none.p_value == 1.0 and none.absolute.ci_lower == none.absolute.ci_upper == 0.0
    assert np.isnan(none.relative.estimate)  # relative lift over a zero mean is undefined
    certain = frequentist_test(SampleStats(10, 10, 10), SampleStats(10, 20, 40))
    assert certain.p_value == 0.0 and certain.absolute.estimate == 1.0


def test_ratio_metric_matches_welch_on_linearised_values() -> None:
    """The ratio test equals Welch on num - R*den scaled by 1/mean_den, per arm."""
    rng = np.random.default_rng(11)

    def arm(n: int, lift: float) -> tuple[np.ndarray, np.ndarray, RatioStats]:
        den = rng.poisson(2, n) + 1.0
        num = rng.gamma(2.0, 10.0 * lift, n) * den
        s = RatioStats(n, num.sum(), (num * num).sum(), den.sum(), (den * den).sum(), num @ den)
        return num, den, s

    nc, dc, sc = arm(800, 1.0)
    nt, dt, st = arm(900, 1.1)
    res = frequentist_test(sc, st)
    rc, rt = nc.sum() / dc.sum(), nt.sum() / dt.sum()
    vc = np.var(nc - rc * dc, ddof=1) / (nc.size * dc.mean() ** 2)
    vt = np.var(nt - rt * dt, ddof=1) / (nt.size * dt.mean() ** 2)
    assert res.absolute.estimate == pytest.approx(rt - rc, rel=1e-12)
    assert res.absolute.se == pytest.approx(np.sqrt(vc + vt), rel=1e-8)
    df = (vc + vt) ** 2 / (vc**2 / (nc.size - 1) + vt**2 / (nt.size - 1))
    t = (rt - rc) / np.sqrt(vc + vt)
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-8)


def test_cuped_estimate_is_the_ols_treatment_coefficient() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    x = rng.normal(10, 3, 2 * n)
    g = np.repeat([0, 1], n)
    y = 5 + 0.8 * x + 0.5 * g + rng.normal(0, 2 + 0.5 * g)
    res = frequentist_test(cuped_stats(y[g == 0], x[g == 0]), cuped_stats(y[g == 1], x[g == 1]))
    design = sm.add_constant(np.column_stack([g, x - x.mean()]))
    ols = sm.OLS(y, design).fit(cov_type="HC2")
    assert res.absolute.estimate == pytest.approx(ols.params[1], rel=1e-9)
    # theta treated as known: the standard error agrees with the robust OLS one to 0.5%
    assert res.absolute.se == pytest.approx(ols.bse[1], rel=5e-3)
    # and the adjusted mean of control is the regression's fitted control mean at mean(x)
    assert res.control.mean == pytest.approx(ols.params[0], rel=1e-9)


def test_cuped_theta_pooled_over_three_arms_matches_ols_with_dummies() -> None:
    rng = np.random.default_rng(8)
    n = 1000
    g = np.repeat([0, 1, 2], n)
    x = rng.gamma(2.0, 2.0, 3 * n)
    y = 1.0 + 0.6 * x + np.array([0.0, 0.3, -0.2])[g] + rng.normal(0, 1, 3 * n)
    groups = [cuped_stats(y[g == k], x[g == k]) for k in range(3)]
    design = sm.add_constant(np.column_stack([g == 1, g == 2, x - x.mean()]).astype(float))
    ols = sm.OLS(y, design).fit()
    assert pooled_theta(groups) == pytest.approx(ols.params[3], rel=1e-9)
    adjusted = cuped_moments(groups)
    assert adjusted[1].mean - adjusted[0].mean == pytest.approx(ols.params[1], rel=1e-9)
    assert adjusted[2].mean - adjusted[0].mean == pytest.approx(ols.params[2], rel=1e-9)


def test_cuped_with_a_constant_covariate_is_the_plain_test() -> None:
    rng = np.random.default_rng(9)
    yc, yt = rng.normal(0, 1, 300), rng.normal(0.2, 1, 300)
    ones = np.ones(300)
    plain = frequentist_test(sample_stats(yc), sample_stats(yt))
    cuped = frequentist_test(cuped_stats(yc, ones), cuped_stats(yt, ones))
    assert cuped.p_value == pytest.approx(plain.p_value, rel=1e-9)
