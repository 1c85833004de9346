"""Every recommender on the same synthetic shoppers, with planted behaviour to recover.

The data (60 users x 8 baskets): every user has a personal favourite bought in every basket;
users 0-29 buy A and B together in every other basket, users 30-49 buy C and D together;
the "targets" 50-54 buy A but never B, and 55-59 buy C but never D; the other baskets hold
one random filler item (out of 60). So:

* the first buy-again recommendation of every user is their favourite (P-TopFreq, TIFU-KNN);
* a collaborative model must recommend each target the partner of *their* item (B or D) once
  their purchases are excluded, and B must be A's most similar item (EASE, ALS, associations).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from kirana.models.recommenders import (
    ALS,
    EASE,
    TIFUKNN,
    Associations,
    Baskets,
    Blend,
    GTopFreq,
    PTopFreq,
    Recommender,
)
from kirana.models.recommenders.tifuknn import basket_weights

A, B, C, D = 1001, 1002, 1003, 1004
FILLER = np.arange(1100, 1160)
TARGETS = list(range(50, 60))
PARTNER = {u: B if u < 55 else D for u in TARGETS}  # what each target is missing
N_USERS, N_BASKETS = 60, 8


def pair_items(user: int) -> list[int]:
    """The planted items of ``user``'s every other basket."""
    if user < 30:
        return [A, B]
    if user < 50:
        return [C, D]
    return [A] if user < 55 else [C]


def favourite(user: int) -> int:
    return 2000 + user


def synthetic(seed: int = 0) -> Baskets:
    rng = np.random.default_rng(seed)
    users, orders, items, seq = [], [], [], []
    for u in range(N_USERS):
        for t in range(N_BASKETS):
            basket = [favourite(u)]
            if t % 2 == 0:
                basket += pair_items(u)
            else:
                basket.append(int(rng.choice(FILLER)))
            users += [u] * len(basket)
            orders += [u * 100 + t] * len(basket)
            items += basket
            seq += [t] * len(basket)
    return Baskets.from_arrays(users, orders, items, seq)


FACTORIES: dict[str, Callable[[], Recommender]] = {
    "g-topfreq": GTopFreq,
    "p-topfreq": PTopFreq,
    "tifu-knn": lambda: TIFUKNN(n_neighbors=10, alpha=0.7, group_size=2),
    "ease": lambda: EASE(l2=5.0),
    "ease-top-items": lambda: EASE(l2=5.0, max_items=40),
    "als": lambda: ALS(factors=8, regularization=10.0, alpha=5.0, iterations=30, random_state=7),
    "associations": lambda: Associations(min_count=10),
    "blend": lambda: Blend([TIFUKNN(n_neighbors=10), EASE(l2=5.0)], [1.0, 0.1]),
}
SIMILAR = ["ease", "ease-top-items", "als", "associations"]


@pytest.fixture(scope="module")
def baskets() -> Baskets:
    return synthetic()


@pytest.fixture(scope="module", params=list(FACTORIES))
def fitted(request: pytest.FixtureRequest, baskets: Baskets) -> tuple[str, Recommender]:
    return request.param, FACTORIES[request.param]().fit(baskets)


# -- the shared contract -----------------------------------------------------------------------
def test_lists_are_ranked_distinct_catalogue_items(fitted, baskets) -> None:
    _, model = fitted
    recs = model.recommend(baskets.user_ids, k=10)
    assert recs.item_ids.shape == recs.scores.shape == (N_USERS, 10)
    assert np.isin(recs.item_ids, baskets.item_ids).all()
    assert all(len(set(row)) == 10 for row in recs.item_ids.tolist())
    assert (np.diff(recs.scores, axis=1) <= 0).all()
    assert recs.keys.tolist() == baskets.user_ids.tolist()


def test_exclude_purchased_removes_every_bought_item(fitted, baskets) -> None:
    _, model = fitted
    recs = model.recommend(baskets.user_ids, k=15, exclude_purchased=True)
    frame = baskets.to_frame()
    for user, ranked in recs:
        bought = set(frame.loc[frame.user_id == user, "product_id"])
        assert len(ranked) == 15
        assert not bought & {item for item, _ in ranked}


def test_padding_when_fewer_items_than_k_remain(fitted, baskets) -> None:
    _, model = fitted
    recs = model.recommend([TARGETS[0]], k=baskets.n_items, exclude_purchased=True)
    frame = baskets.to_frame()
    unbought = set(baskets.item_ids.tolist()) - set(
        frame.loc[frame.user_id == TARGETS[0]].product_id
    )
    assert set(recs.items(0)) == unbought
    assert int(recs.valid.sum()) == len(unbought)
    assert np.isneginf(recs.scores[0][~recs.valid[0]]).all()


def test_unknown_users_get_the_best_sellers(fitted) -> None:
    _, model = fitted
    recs = model.recommend([-5, 10**9], k=3)
    assert recs.items(0) == recs.items(1) == [A, B, C]


def test_save_load_round_trip(fitted, baskets, tmp_path) -> None:
    name, model = fitted
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    assert type(loaded) is type(model) and loaded.params == model.params
    for exclude in (False, True):
        a = model.recommend(baskets.user_ids, k=10, exclude_purchased=exclude)
        b = loaded.recommend(baskets.user_ids, k=10, exclude_purchased=exclude)
        np.testing.assert_array_equal(a.item_ids, b.item_ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    if name in SIMILAR:
        a, b = model.similar_items([A, B], k=5), loaded.similar_items([A, B], k=5)
        np.testing.assert_array_equal(a.item_ids, b.item_ids)
    files = sorted(p.name for p in (tmp_path / name).iterdir())
    assert files[:2] == ["arrays.npz", "model.json"]


def test_fitting_twice_gives_identical_lists(fitted, baskets) -> None:
    name, model = fitted
    again = FACTORIES[name]().fit(baskets)
    a = model.recommend(baskets.user_ids, k=10, exclude_purchased=True)
    b = again.recommend(baskets.user_ids, k=10, exclude_purchased=True)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_similar_items_where_meaningful(fitted) -> None:
    name, model = fitted
    if name not in SIMILAR:
        with pytest.raises(NotImplementedError):
            model.similar_items([A])
        return
    sims = model.similar_items([A, B, 424242], k=3)
    assert sims.items(0)[0] == B and sims.items(1)[0] == A
    assert A not in sims.items(0) and sims.items(2) == []  # never itself; unknown: nothing


def test_refitting_on_other_baskets_forgets_the_old_ids(fitted, baskets) -> None:
    name, _ = fitted
    model = FACTORIES[name]().fit(baskets)
    model.recommend([0], k=1)  # builds the id lookups
    subset = baskets.select_users(range(30, 60))
    model.fit(subset)
    assert model.user_index([0, 30]).tolist() == [-1, 0]
    fresh = FACTORIES[name]().fit(subset)
    a, b = model.recommend([30, 59], k=5), fresh.recommend([30, 59], k=5)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)


# -- planted behaviour -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["p-topfreq", "tifu-knn", "blend"])
def test_buy_again_recommends_the_favourite_first(name, baskets) -> None:
    recs = FACTORIES[name]().fit(baskets).recommend(baskets.user_ids, k=5)
    assert [ranked[0][0] for _, ranked in recs] == [favourite(u) for u in range(N_USERS)]


@pytest.mark.parametrize("name", ["ease", "ease-top-items", "als", "associations", "blend"])
def test_collaborative_models_recommend_the_missing_partner(name, baskets) -> None:
    model = FACTORIES[name]().fit(baskets)
    recs = model.recommend(TARGETS, k=3, exclude_purchased=True)
    assert [ranked[0][0] for _, ranked in recs] == [PARTNER[u] for u in TARGETS]


def test_g_topfreq_is_the_same_popularity_list_for_everyone(baskets) -> None:
    recs = GTopFreq().fit(baskets).recommend(baskets.user_ids, k=4)
    assert (recs.item_ids == recs.item_ids[0]).all()
    counts = baskets.item_counts()
    assert recs.items(0) == [A, B, C, D] and list(recs.scores[0]) == sorted(counts)[::-1][:4]


def test_p_topfreq_pads_with_the_global_best_sellers() -> None:
    b = Baskets.from_arrays([1, 1, 2, 2, 2], [10, 10, 20, 20, 21], [5, 6, 6, 7, 7], [1, 1, 1, 1, 2])
    recs = PTopFreq().fit(b).recommend([1], k=3)
    assert recs.items(0) == [6, 5, 7]  # own items (6 more popular), then the best seller left


def test_als_seed_controls_the_factors(baskets) -> None:
    one = ALS(factors=8, random_state=1, num_threads=1).fit(baskets)
    two = ALS(factors=8, random_state=1, num_threads=2).fit(baskets)
    other = ALS(factors=8, random_state=2).fit(baskets)
    np.testing.assert_array_equal(one.item_factors, two.item_factors)
    assert not np.allclose(one.item_factors, other.item_factors)


def test_tifu_basket_weights_by_hand() -> None:
    # one user, 5 baskets, groups of 2 -> 3 groups of sizes 2, 2, 1 (oldest first)
    b = Baskets.from_arrays([1] * 5, range(5), [9] * 5, range(5))
    rb, rg = 0.5, 0.8
    w = basket_weights(b, group_size=2, within_decay=rb, group_decay=rg)
    expected = [
        rb / 2 * rg**2 / 3,
        1 / 2 * rg**2 / 3,
        rb / 2 * rg / 3,
        1 / 2 * rg / 3,
        1 / 1 * 1 / 3,
    ]
    np.testing.assert_allclose(w, expected)
    fixed = basket_weights(b, group_size=99, within_decay=rb, group_decay=rg, n_groups=3)
    np.testing.assert_allclose(fixed, expected)  # 3 groups of 5 baskets: the same split


def test_tifu_neighbours_are_the_most_similar_users(baskets) -> None:
    model = TIFUKNN(n_neighbors=5).fit(baskets)
    for u in range(N_USERS):  # neighbours share the planted item (A or C), and are not u
        neighbours = model.user_ids[model.neighbors[model.user_index([u])[0]]].tolist()
        assert u not in neighbours
        assert all(pair_items(v)[0] == pair_items(u)[0] for v in neighbours)


def test_ease_weights_have_a_zero_diagonal_and_top_items_only(baskets) -> None:
    model = EASE(l2=5.0, max_items=40).fit(baskets)
    assert model.weights.shape == (40, 40)
    assert (np.diag(model.weights) == 0).all()
    users_per_item = np.bincount(model.purchased.indices, minlength=model.n_items)
    assert users_per_item[model.kept].min() >= np.delete(users_per_item, model.kept).max()
