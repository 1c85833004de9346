"""Buying-pattern models: how many orders, how likely still a customer, how much per order.

- :mod:`.rfm` turns a transactions table into per-customer (x, t_x, T, m_x) summaries;
- :mod:`.bgnbd` is the BG/NBD (Fader, Hardie & Lee 2005) for orders and P(alive);
- :mod:`.gamma_gamma` is the Gamma-Gamma (Fader & Hardie 2013) for spend per order;
- :mod:`.fit` runs all of it, with a holdout calibration, in one call.

See docs/buying-patterns.md for the formulas and the definitions chosen.
"""

from kirana.models.buying_patterns.bgnbd import (
    BGNBDFit,
    BGNBDParams,
    conditional_expected_purchases,
    expected_purchases,
    fit_bgnbd,
    median_time_to_next_purchase,
    probability_alive,
    probability_purchase_within,
)
from kirana.models.buying_patterns.fit import fit_buying_patterns
from kirana.models.buying_patterns.gamma_gamma import (
    GammaGammaFit,
    GammaGammaParams,
    conditional_expected_spend,
    fit_gamma_gamma,
    frequency_monetary_correlation,
)
from kirana.models.buying_patterns.rfm import RFM, TransactionsError, build_rfm

__all__ = [
    "RFM",
    "BGNBDFit",
    "BGNBDParams",
    "GammaGammaFit",
    "GammaGammaParams",
    "TransactionsError",
    "build_rfm",
    "conditional_expected_purchases",
    "conditional_expected_spend",
    "expected_purchases",
    "fit_bgnbd",
    "fit_buying_patterns",
    "fit_gamma_gamma",
    "frequency_monetary_correlation",
    "median_time_to_next_purchase",
    "probability_alive",
    "probability_purchase_within",
]
