"""Kirana's experimentation stats engine: pure functions from sufficient statistics to results.

Queries elsewhere aggregate each variation to sums (:mod:`.sufficient`); the tests here turn
them into frozen result dataclasses: Welch t-tests (:mod:`.frequentist`), a Gaussian Bayesian
model (:mod:`.bayesian`), always-valid sequential inference (:mod:`.sequential`), the
sample-ratio-mismatch check (:mod:`.srm`) and multiple-comparison corrections
(:mod:`.corrections`). :func:`analyze` wraps it all behind one JSON-in, JSON-out call.
"""

from kirana.experiments.stats.analysis import analyze
from kirana.experiments.stats.bayesian import (
    BayesianResult,
    NormalPrior,
    PosteriorLift,
    bayesian_test,
)
from kirana.experiments.stats.corrections import (
    Correction,
    adjust,
    benjamini_hochberg,
    bonferroni,
    holm,
)
from kirana.experiments.stats.errors import StatsInputError
from kirana.experiments.stats.frequentist import FrequentistResult, Lift, frequentist_test
from kirana.experiments.stats.moments import (
    Moments,
    cuped_moments,
    moments_of,
    pooled_theta,
    to_moments,
)
from kirana.experiments.stats.sequential import optimal_mixture_ratio, sequential_test
from kirana.experiments.stats.srm import SrmResult, srm_test
from kirana.experiments.stats.sufficient import CupedStats, RatioStats, SampleStats

__all__ = [
    "BayesianResult",
    "Correction",
    "CupedStats",
    "FrequentistResult",
    "Lift",
    "Moments",
    "NormalPrior",
    "PosteriorLift",
    "RatioStats",
    "SampleStats",
    "SrmResult",
    "StatsInputError",
    "adjust",
    "analyze",
    "bayesian_test",
    "benjamini_hochberg",
    "bonferroni",
    "cuped_moments",
    "frequentist_test",
    "holm",
    "moments_of",
    "optimal_mixture_ratio",
    "pooled_theta",
    "sequential_test",
    "srm_test",
    "to_moments",
]
