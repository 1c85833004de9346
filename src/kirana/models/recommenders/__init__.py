"""Recommenders on baskets: baselines, buy-again, collaborative filtering, bought-together.

=================  ===========================================  ==============================
model              use                                          reference
=================  ===========================================  ==============================
`GTopFreq`         best sellers (cold start, baseline)          Li et al. TOIS 2023
`PTopFreq`         your usual items (baseline)                  Li et al. TOIS 2023
`TIFUKNN`          next basket / buy again                      Hu et al. SIGIR 2020
`EASE`             recommended for you (discovery)              Steck WWW 2019
`ALS`              recommended for you (baseline, `implicit`)   Hu, Koren, Volinsky ICDM 2008
`Associations`     frequently bought together                   Agrawal et al. SIGMOD 1993
`Blend`            weighted mix of the above                    -
=================  ===========================================  ==============================

All share `Recommender`: ``fit(baskets)``, ``recommend(user_ids, k, exclude_purchased=...)``,
``similar_items(item_ids, k)`` where meaningful, ``save(dir)`` / ``Recommender.load(dir)``.
"""

from kirana.models.recommenders.als import ALS
from kirana.models.recommenders.associations import Associations
from kirana.models.recommenders.base import UNSCORED, Recommendations, Recommender, top_k
from kirana.models.recommenders.blend import Blend
from kirana.models.recommenders.data import Baskets
from kirana.models.recommenders.ease import EASE
from kirana.models.recommenders.popularity import GTopFreq, PTopFreq
from kirana.models.recommenders.tifuknn import TIFUKNN

__all__ = [
    "ALS",
    "EASE",
    "TIFUKNN",
    "UNSCORED",
    "Associations",
    "Baskets",
    "Blend",
    "GTopFreq",
    "PTopFreq",
    "Recommendations",
    "Recommender",
    "top_k",
]
