"""The real GrowthBook Python SDK, loading features over HTTP from a real Kirana
(``api_host`` = the server, ``client_key`` = a source's write key), puts every user in the
variation Kirana's server-side assignment API returns - namespaces, a global holdout,
coverage, uneven weights and targeting included."""

from __future__ import annotations

import random

import httpx
from growthbook import GrowthBook, feature_repo

from tests.conftest import RunningKirana

N_USERS = 600


def _arms(n: int) -> list[dict]:
    return [{"key": f"v{i}", "value": f"value-{i}"} for i in range(n)]


EXPERIMENTS = [
    {
        "key": "global-holdout",
        "variations": [{"key": "holdout"}, {"key": "general"}],
        "weights": [0.1, 0.9],
        "seed": "gh-2026",
    },
    {
        "key": "checkout-a",
        "variations": _arms(2),
        "namespace": ["checkout", 0, 0.5],
        "holdout": "global-holdout",
    },
    {
        "key": "checkout-b",
        "variations": _arms(3),
        "weights": [0.2, 0.3, 0.5],
        "namespace": ["checkout", 0.5, 1],
        "holdout": "global-holdout",
    },
    {
        "key": "hero",
        "variations": _arms(4),
        "weights": [0.1, 0.2, 0.3, 0.4],
        "coverage": 0.7,
        "hash_attribute": "userId",
    },
    {
        "key": "ios-only",
        "variations": _arms(2),
        "targeting": {"platform": "ios"},
        "hash_version": 1,
    },
]


def _users() -> list[dict]:
    rng = random.Random(7)
    users = []
    for i in range(N_USERS):
        user: dict = {"anonymousId": f"anon-{i}-{rng.randrange(10**6)}"}
        if rng.random() < 0.7:
            user["userId"] = f"user-{i}"
        user["attributes"] = {"platform": rng.choice(["ios", "android", "web"])}
        users.append(user)
    return users


def test_growthbook_sdk_over_http_agrees_with_server_assignment(kirana: RunningKirana) -> None:
    admin = kirana.client()
    admin.headers["Authorization"] = f"Bearer {kirana.admin_token}"
    for body in EXPERIMENTS:
        assert admin.post("/v1/experiments", json=body).status_code == 201
        assert admin.post(f"/v1/experiments/{body['key']}/start").status_code == 200

    feature_repo.clear_cache()
    server = kirana.client()
    server.headers["X-Write-Key"] = kirana.write_key
    compared = 0
    seen: dict[str, set[str]] = {e["key"]: set() for e in EXPERIMENTS}
    for user in _users():
        response = server.post("/v1/experiments/assign", json={**user, "log": False})
        assert response.status_code == 200, response.text
        kirana_says = {
            a["experiment_id"]: a["variation_id"] for a in response.json()["assignments"]
        }

        attributes = {**user["attributes"], "anonymousId": user["anonymousId"]}
        attributes["id"] = user.get("userId") or user["anonymousId"]
        if "userId" in user:
            attributes["userId"] = user["userId"]
        gb = GrowthBook(api_host=kirana.url, client_key=kirana.write_key, attributes=attributes)
        gb.load_features()
        sdk_says = {}
        for exp in EXPERIMENTS:
            result = gb.eval_feature(f"exp:{exp['key']}")
            if result.source == "experiment":
                sdk_says[exp["key"]] = result.experimentResult.key
        gb.destroy()
        assert sdk_says == kirana_says, (user, sdk_says, kirana_says)
        for key, variation in kirana_says.items():
            seen[key].add(variation)
        compared += 1
    assert compared == N_USERS
    # the comparison exercised every arm of every experiment, held-out users included
    for exp in EXPERIMENTS:
        assert seen[exp["key"]] == {v["key"] for v in exp["variations"]}, exp["key"]


def test_sdk_sees_the_payload_change_when_an_experiment_stops(kirana: RunningKirana) -> None:
    admin = kirana.client()
    admin.headers["Authorization"] = f"Bearer {kirana.admin_token}"
    admin.post("/v1/experiments", json={"key": "banner", "variations": _arms(2)})
    admin.post("/v1/experiments/banner/start")
    feature_repo.clear_cache()
    gb = GrowthBook(api_host=kirana.url, client_key=kirana.write_key, attributes={"id": "u1"})
    gb.load_features()
    assert gb.eval_feature("exp:banner").source == "experiment"
    admin.post("/v1/experiments/banner/stop")
    feature_repo.clear_cache()
    gb.load_features()
    assert gb.eval_feature("exp:banner").source == "defaultValue"
    assigned = httpx.post(
        f"{kirana.url}/v1/experiments/assign",
        json={"userId": "u1"},
        headers={"X-Write-Key": kirana.write_key},
    ).json()["assignments"]
    assert assigned == []
    gb.destroy()
