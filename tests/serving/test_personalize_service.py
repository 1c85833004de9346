"""The personalise service on real stores: rules, cold start, eviction, affinities, the hook."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kirana.automation.tracking import decode_token
from kirana.serving.personalize import PersonalizeRequest, PlacementNotFound
from kirana.serving.responses import Assignment
from tests.serving.helpers import Env, item, make_env

POPULAR = [("p1", 9.0), ("p2", 8.0), ("p3", 7.0)]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    e.content.import_bundle(
        {
            "widgets": [
                {"key": "again", "kind": "buy_again", "max_items": 3},
                {"key": "for-you", "kind": "recommended_for_you", "max_items": 2},
                {
                    "key": "hero",
                    "kind": "banner",
                    "max_items": 1,
                    "items": [item("b1"), item("b2")],
                },
            ],
            "placements": [
                {
                    "key": "home_feed",
                    "max_widgets": 3,
                    "widgets": [{"widget": "hero", "pinned_slot": 0}, "again", "for-you"],
                }
            ],
        }
    )
    e.serving.replace_recommendations("popular", [("*", POPULAR)], version="v1")
    e.refresh()
    return e


def ask(env: Env, user: str | None = None, anon: str | None = None, **kw):
    return env.service.personalize(
        PersonalizeRequest("home_feed", user, anon if user is None else None, **kw)
    )


def keys(response) -> list[str]:
    return [w.key for w in response.widgets]


def test_cold_start_gets_popular_products_and_content(env: Env) -> None:
    r = ask(env, anon="visitor-1")
    assert r.cold_start and r.profile_id is None and r.segment == "all"
    assert keys(r) == ["hero", "for-you"]  # no buy-again list for a stranger: it drops out
    fy = r.widgets[1]
    assert fy.source == "popular" and [i.key for i in fy.items] == ["p1", "p2"]  # max_items 2
    assert all(i.type == "product" for i in fy.items)


def test_known_user_gets_their_own_lists(env: Env) -> None:
    env.person("u1", audiences=("vegan",))
    env.serving.replace_recommendations("buy_again", [("u1", [("milk", 1.0)])], version="r1")
    env.serving.replace_recommendations(
        "recommended_for_you", [("u1", [("tofu", 2.0), ("oat", 1.0)])], version="r1"
    )
    env.refresh()
    r = ask(env, user="u1")
    assert not r.cold_start and r.profile_id == "p-u1" and r.segment == "vegan"
    lists = {w.key: ([i.key for i in w.items], w.source) for w in r.widgets}
    assert lists["again"] == (["milk"], "buy_again")
    assert lists["for-you"] == (["tofu", "oat"], "recommended_for_you")
    # tokens say what the statistics need; the decision is logged with propensities
    token = decode_token(r.widgets[0].items[0].tracking_id)
    assert (token.decision_id, token.placement, token.segment) == (
        r.decision_id,
        "home_feed",
        "vegan",
    )
    assert token.widget == "hero" and token.item_arm == f"hero/{r.widgets[0].items[0].key}"
    logged = env.logged[-1].decision
    assert logged.decision_id == r.decision_id and logged.widgets[0].propensity == 1.0  # pinned
    assert all(0 < w.propensity <= 1 for w in logged.widgets)


def test_pins_hold_and_limit_cuts(env: Env) -> None:
    env.serving.replace_recommendations("buy_again", [("u1", [("milk", 1.0)])], version="r1")
    env.refresh()
    for _ in range(20):
        assert keys(ask(env, user="u1"))[0] == "hero"
    assert keys(ask(env, user="u1", limit=1)) == ["hero"]


def test_targeting_schedules_and_availability_hold(env: Env) -> None:
    now = datetime.now(UTC)
    env.content.create_item("hero", item("vegan-only", audiences=["vegan"]))
    env.content.create_item(
        "hero", item("next-week", schedule={"start": (now + timedelta(days=7)).isoformat()})
    )
    env.content.create_item("hero", item("pulled", available=False))
    env.content.update_widget("hero", {"kind": "banner", "max_items": 10})
    env.person("vegan-user", audiences=("vegan",))
    env.refresh()
    shown_to = {
        who: {i.key for _ in range(5) for i in ask(env, user=who).widgets[0].items}
        for who in ("vegan-user", "someone")
    }
    assert shown_to["vegan-user"] == {"b1", "b2", "vegan-only"}
    assert shown_to["someone"] == {"b1", "b2"}
    later = env.service.personalize(
        PersonalizeRequest("home_feed", "someone"), now=now + timedelta(days=8)
    )
    assert {i.key for i in later.widgets[0].items} == {"b1", "b2", "next-week"}


def test_frequency_caps_hold_per_user(env: Env) -> None:
    env.content.update_widget(
        "hero",
        {"kind": "banner", "max_items": 1, "frequency_cap": {"max_impressions": 2, "hours": 24}},
    )
    env.refresh()
    now = datetime.now(UTC).timestamp()
    with env.feedback.transaction():
        env.feedback.add_cap_impressions(
            [("u:u1", "hero", "d1.0.0", now - 60), ("u:u1", "hero", "d2.0.0", now - 30)]
        )
    assert "hero" not in keys(ask(env, user="u1"))  # capped: two views in the last day
    assert "hero" in keys(ask(env, user="u2"))
    with env.feedback.transaction():  # views older than the window do not count
        env.feedback.add_cap_impressions(
            [("u:u3", "hero", f"o{i}.0.0", now - 2 * 86400) for i in range(5)]
        )
    assert "hero" in keys(ask(env, user="u3"))


def test_eviction_and_readmission(env: Env) -> None:
    env.seed("hero/b1", 1000, 0)  # confidently below 0.5 %: evicted
    env.seed("hero/b2", 1000, 40)
    first = Counter(ask(env, user="u1").widgets[0].items[0].key for _ in range(30))
    assert first == {"b2": 30}
    assert "hero/b1" in env.logged[-1].decision.evicted
    # editing the item makes it new content: back, and in burn-in (shown first)
    env.content.update_item("hero", "b1", {"title": "Better B1", "template": "card"})
    env.refresh()
    assert ask(env, user="u1").widgets[0].items[0].key == "b1"
    assert env.logged[-1].decision.evicted == ()
    # a re-run in a new window is new content too
    env.seed("hero/b1", 1000, 0, epoch=(2, 0.0))
    assert ask(env, user="u1").widgets[0].items[0].key == "b2"
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    env.content.update_item(
        "hero", "b1", {"title": "Better B1", "template": "card", "schedule": {"start": start}}
    )
    env.refresh()
    assert ask(env, user="u1").widgets[0].items[0].key == "b1"


def test_affinities_from_computed_traits_lift_tagged_content(env: Env) -> None:
    env.content.update_item(
        "hero", "b1", {"title": "Veg", "template": "card", "tags": ["department:Produce"]}
    )
    env.refresh()
    env.seed("hero/b1", 200, 10, epoch=(2, 0.0))
    env.seed("hero/b2", 200, 10)
    env.person("veg-fan", computed={"favourite_department": "produce"})
    env.person("neutral", computed={"favourite_department": "bakery"})
    share = {
        who: sum(ask(env, user=who).widgets[0].items[0].key == "b1" for _ in range(300)) / 300
        for who in ("veg-fan", "neutral")
    }
    assert share["veg-fan"] > 0.75  # same CTR, 1.5x preference
    assert 0.35 < share["neutral"] < 0.65


def test_the_experiment_hook_changes_policy_and_is_reported(env: Env) -> None:
    seen = []

    def assigner(user, placement):
        seen.append((user.user_id, placement))
        return [Assignment("ranking-test", "uniform", policy="uniform")]

    env.service.assigner = assigner
    r = ask(env, user="u7")
    assert seen == [("u7", "home_feed")]
    assert [(a.experiment_id, a.variation_id) for a in r.experiments] == [
        ("ranking-test", "uniform")
    ]
    row = env.logged[-1]
    assert row.policy == "uniform" and row.experiments == (
        {"experiment_id": "ranking-test", "variation_id": "uniform"},
    )


def test_frequently_bought_together_uses_the_items_in_view(env: Env) -> None:
    env.content.create_widget({"key": "fbt", "kind": "frequently_bought_together"})
    env.content.create_placement({"key": "product_page", "widgets": ["fbt"]})
    env.serving.replace_recommendations(
        "frequently_bought_together",
        [("bread", [("butter", 3.0), ("jam", 1.0)]), ("jam", [("bread", 2.0), ("scones", 1.0)])],
        version="r1",
    )
    env.refresh()
    r = env.service.personalize(PersonalizeRequest("product_page", "u1", item_ids=("bread", "jam")))
    assert [i.key for i in r.widgets[0].items] == ["butter", "scones"]
    with pytest.raises(PlacementNotFound, match="known: home_feed, product_page"):
        env.service.personalize(PersonalizeRequest("cart", "u1"))
    # a placement created a moment ago is found without waiting for the refresher
    env.content.create_placement({"key": "cart", "widgets": ["fbt"]})
    r = env.service.personalize(PersonalizeRequest("cart", "u1", item_ids=("jam",)))
    assert [i.key for i in r.widgets[0].items] == ["bread", "scones"]
