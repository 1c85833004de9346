"""The personalise service keeps affinities per (placement, tag strengths): the same values as
computing them per request, and new ones once the content changes."""

from __future__ import annotations

from pathlib import Path

from kirana.automation.affinity import affinities, user_tags
from tests.serving.helpers import item, make_env


def test_cached_affinities_follow_the_content(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.content.import_bundle(
        {
            "widgets": [
                {
                    "key": "hero",
                    "kind": "banner",
                    "items": [
                        item("b1", tags=["department:produce"]),
                        item("b2", tags=["department:bakery"]),
                    ],
                }
            ],
            "placements": [{"key": "home_feed", "widgets": ["hero"]}],
        }
    )
    env.refresh()
    env.person("veg", computed={"favourite_department": "produce"})
    env.person("veg2", computed={"favourite_department": "produce"})
    env.person("none")
    service = env.service
    traits = service.settings.affinity_traits

    def direct(user_id: str) -> dict[str, float]:
        user = service.profiles.resolve(user_id, None)
        compiled = service.content.get("home_feed")
        return affinities(compiled.tags, user_tags(user.computed, traits))

    def cached(user_id: str) -> dict[str, float]:
        user = service.profiles.resolve(user_id, None)
        return service._affinities(service.content.get("home_feed"), user)

    assert cached("veg") == direct("veg") == {"b1": 1.0}
    assert cached("veg2") is cached("veg")  # one entry for the same strengths
    assert cached("none") == direct("none") == {}
    env.content.update_item(
        "hero", "b2", {"title": "B2", "template": "card", "tags": ["department:Produce"]}
    )
    env.refresh()
    assert cached("veg") == direct("veg") == {"b1": 1.0, "b2": 1.0}
