"""The personalise and content APIs over HTTP, with feedback through the tracking API."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from kirana.automation.replay import check_propensities, ips, snips
from kirana.config import Settings, load_settings
from kirana.serving.evaluation import logged_decisions
from kirana.serving.extension import personalization
from kirana.serving.store import ServingStore, serving_path
from tests.conftest import RunningKirana
from tests.serving.helpers import item


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.2},
        automation={"burn_in": 5, "refresh_seconds": 0.1, "decision_flush_seconds": 0.2},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def setup_content(k: RunningKirana) -> None:
    with k.client() as c:
        body = {
            "widgets": [
                {
                    "key": "hero",
                    "kind": "banner",
                    "max_items": 1,
                    "items": [item("good"), item("bad")],
                },
                {"key": "for-you", "kind": "recommended_for_you", "max_items": 2},
            ],
            "placements": [{"key": "home_feed", "max_widgets": 2, "widgets": ["hero", "for-you"]}],
        }
        r = c.post("/v1/content/import", json=body, headers=bearer(k.admin_token))
        assert r.status_code == 200, r.text


def test_content_api_roles_and_errors(kirana: RunningKirana) -> None:
    setup_content(kirana)
    admin, viewer = bearer(kirana.admin_token), bearer(kirana.viewer_token)
    with kirana.client() as c:
        assert c.get("/v1/content/placements", headers=viewer).json()[0]["key"] == "home_feed"
        assert c.get("/v1/content/widgets/hero", headers=viewer).json()["items"][1]["key"] == "bad"
        r = c.post("/v1/content/widgets/hero/items", json=item("x"), headers=viewer)
        assert r.status_code == 403
        assert c.get("/v1/content/widgets").status_code == 401
        r = c.post("/v1/content/widgets/hero/items", json={"key": "x"}, headers=admin)
        assert r.status_code == 422 and r.json()["field"] == "title"
        r = c.post("/v1/content/widgets/hero/items", json=item("new"), headers=admin)
        assert r.status_code == 201 and r.json()["version"] == 1
        r = c.put("/v1/content/widgets/hero/items/new", json=item("new", title="T2"), headers=admin)
        assert r.json()["version"] == 2
        r = c.delete("/v1/content/widgets/hero", headers=admin)
        assert r.status_code == 409 and "home_feed" in r.json()["message"]
        r = c.get("/v1/content/placements/nope", headers=viewer)
        assert r.status_code == 404 and "kirana content placements list" in r.json()["message"]
        stats = c.get("/v1/content/placements/home_feed/stats", headers=viewer).json()
        assert {row["arm"] for row in stats} >= {"hero", "hero/good", "hero/bad", "for-you"}
        assert (
            c.get("/v1/content/export", headers=viewer).json()["placements"][0]["key"]
            == "home_feed"
        )


BAD_QUERIES = [
    ({"userId": "u1"}, 400, "missing_field"),
    ({"placement": "home_feed"}, 400, "invalid_identity"),
    ({"placement": "home_feed", "userId": "u1", "anonymousId": "a1"}, 400, "invalid_identity"),
    ({"placement": "home_feed", "userId": "u1", "limit": "0"}, 400, "invalid_field"),
    ({"placement": "home_feed", "userId": "u1", "limit": "many"}, 400, "invalid_field"),
    ({"placement": "home_feed", "userId": "u1", "limit": "51"}, 400, "invalid_field"),
    ({"placement": "checkout", "userId": "u1"}, 404, "unknown_placement"),
]


def test_bad_requests_and_credentials_get_a_clear_4xx(kirana: RunningKirana) -> None:
    setup_content(kirana)
    key = {"X-Write-Key": kirana.write_key}
    with kirana.client() as c:
        for query, status, code in BAD_QUERIES:
            r = c.get("/v1/personalize", params=query, headers=key)
            assert (r.status_code, r.json()["code"]) == (status, code), query
            assert r.json()["message"]
        q = {"placement": "home_feed", "anonymousId": "a1"}
        assert c.get("/v1/personalize", params=q).json()["code"] == "missing_credentials"
        r = c.get("/v1/personalize", params=q, headers={"X-Write-Key": "nope"})
        assert r.status_code == 401 and r.json()["code"] == "unknown_write_key"
        assert c.get("/v1/personalize", params=q, headers=bearer("nope")).status_code == 401
        assert c.get("/v1/personalize", params=q, auth=(kirana.write_key, "")).status_code == 200
        r = c.get("/v1/personalize", params=q, headers=bearer(kirana.viewer_token))
        assert r.status_code == 200
        assert "/v1/personalize" in c.get("/openapi.json").json()["paths"]


def feed(c, k: RunningKirana, n: int, user: str = "u") -> list[dict]:
    out = []
    for i in range(n):
        r = c.get(
            "/v1/personalize",
            params={"placement": "home_feed", "userId": f"{user}{i}"},
            headers={"X-Write-Key": k.write_key},
        )
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def first_item(response: dict) -> dict:
    hero = next(w for w in response["widgets"] if w["key"] == "hero")
    return hero["items"][0]


def test_clicks_through_the_tracking_api_change_the_order(kirana_worker: RunningKirana) -> None:
    """Live path, consumers in their own process: track -> log -> stats -> personalise."""
    k = kirana_worker
    setup_content(k)
    ServingStore(serving_path(k.settings.state_dir)).replace_recommendations(
        "popular", [("*", [("p1", 1.0), ("p2", 0.5)])], version="v1"
    )
    with k.client() as c:
        first = feed(c, k, 40)
        shown = [first_item(r) for r in first]
        assert {s["key"] for s in shown} == {"good", "bad"}  # exploring at first
        events, clicked = [], set()
        good_views = 0
        for i, s in enumerate(shown):
            props = {"tracking_id": s["tracking_id"]}
            events.append(
                {
                    "type": "track",
                    "event": "Promotion Viewed",
                    "userId": f"u{i}",
                    "properties": props,
                }
            )
            if s["key"] == "good":
                good_views += 1
                if good_views % 2:  # "good" has a 50 % CTR, "bad" none
                    clicked.add(first[i]["decision_id"])
                    events.append(
                        {
                            "type": "track",
                            "event": "Promotion Clicked",
                            "userId": f"u{i}",
                            "properties": props,
                        }
                    )
        r = c.post("/v1/batch", json={"batch": events}, headers={"X-Write-Key": k.write_key})
        assert r.status_code == 200 and r.json()["accepted"] == len(events)
        k.drain()
        deadline, share = time.monotonic() + 15, 0.0
        while time.monotonic() < deadline and share < 0.9:
            time.sleep(0.2)
            share = np.mean([first_item(r)["key"] == "good" for r in feed(c, k, 20, "v")])
        assert share >= 0.9

    # the decision log feeds the offline evaluators
    personalization(k.platform).decisions.flush()
    rows = logged_decisions(k.settings.lake_dir, placement="home_feed", widget="hero")
    by_id = {r["decision_id"]: first_item(r)["key"] for r in first}
    assert len(rows) >= 40
    first_rows = rows[:40]
    assert [r.action for r in first_rows] == [by_id[d["decision_id"]] for d in first]
    assert sum(r.reward for r in first_rows) == len(clicked)
    logged_p = check_propensities([r.propensity for r in first_rows])
    rewards = np.array([r.reward for r in first_rows])
    always_good = np.array([r.action == "good" for r in first_rows], dtype=float)
    estimate = ips(rewards, always_good, logged_p)
    assert estimate.value == pytest.approx(np.mean(always_good * rewards / logged_p))
    assert abs(snips(rewards, always_good, logged_p).value - 0.5) < 0.15  # good's true CTR
    assert snips(rewards, np.ones(40), np.ones(40)).value == pytest.approx(rewards.mean())


def test_server_side_experiment_switches_the_ranking_policy_and_logs_exposure_once(
    kirana: RunningKirana,
) -> None:
    """An experiment whose variations carry a ``personalize`` section is applied by the
    personalise API: the variation Kirana (and the GrowthBook payload) assigns decides the
    ranking policy, and the exposure is logged once per user, only where it applies."""
    k = kirana
    setup_content(k)
    admin = bearer(k.admin_token)
    variations = [
        {"key": "bandit", "value": {"personalize": {"placement": "home_feed"}}},
        {
            "key": "popular",
            "value": {"personalize": {"placement": "home_feed", "policy": "popularity"}},
        },
    ]
    with k.client() as c:
        r = c.post(
            "/v1/experiments", json={"key": "ranking", "variations": variations}, headers=admin
        )
        assert r.status_code == 201, r.text
        assert c.post("/v1/experiments/ranking/start", headers=admin).status_code == 200
        wk = {"X-Write-Key": k.write_key}
        users = [f"x{i}" for i in range(30)]
        served = {}
        for user in users * 2:  # every user twice: one exposure each all the same
            r = c.get(
                "/v1/personalize", params={"placement": "home_feed", "userId": user}, headers=wk
            )
            assert r.status_code == 200, r.text
            served[user] = r.json()["experiments"]
        expected = {
            user: c.post(
                "/v1/experiments/assign", json={"userId": user, "log": False}, headers=wk
            ).json()["assignments"][0]["variation_id"]
            for user in users
        }
    assert {u: [a["variation_id"] for a in s] for u, s in served.items()} == {
        u: [v] for u, v in expected.items()
    }
    assert set(expected.values()) == {"bandit", "popular"}
    assert all(
        a.get("policy") == ("popularity" if a["variation_id"] == "popular" else None)
        for s in served.values()
        for a in s
    )
    k.drain()
    rows = k.lake(
        "SELECT user_id, properties->>'$.variation_id', count(*) FROM events "
        "WHERE event = 'Experiment Viewed' GROUP BY ALL"
    )
    assert {(u, v) for u, v, _ in rows} == set(expected.items())
    assert {n for _, _, n in rows} == {1}
