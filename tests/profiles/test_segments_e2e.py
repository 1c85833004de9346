"""Computed traits and audiences end to end: define over HTTP, feed events, refresh, read back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.conftest import RunningKirana

NOW = datetime.now(UTC)

TRAITS = {
    "orders_30d": {"aggregation": "count", "event": "Order Completed", "window_days": 30},
    "total_spend": {"aggregation": "sum", "event": "Order Completed", "property": "total"},
    "favourite_department": {
        "aggregation": "most_frequent",
        "event": "Order Completed",
        "property": "products[].category",
    },
    "days_since_last_order": {"aggregation": "days_since_last", "event": "Order Completed"},
}
AUDIENCES = {
    "loyal": {"conditions": {"event": "Order Completed", "at_least": 2, "within_days": 30}},
    "big_spenders": {"conditions": {"computed_trait": "total_spend", "op": "gte", "value": 100}},
    "loyal_big_spenders": {
        "conditions": {"and": [{"audience": "loyal"}, {"audience": "big_spenders"}]}
    },
    "gold_by_sql": {"sql": "SELECT profile_id FROM profiles WHERE traits->>'$.plan' = 'gold'"},
}


def order(user: str, n: int, days_ago: float, total: float, categories: list[str]) -> dict:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": f"{user}-o{n}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": {
            "order_id": f"{user}-{n}",
            "total": total,
            "products": [{"product_id": f"p{i}", "category": c} for i, c in enumerate(categories)],
        },
    }


def put(http, admin, kind: str, name: str, body: dict):
    return http.put(f"/v1/{kind}/{name}", json=body, headers=admin)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_traits_and_audiences_refresh_and_show_on_profiles(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        for name, body in TRAITS.items():
            assert put(http, admin, "computed-traits", name, body).status_code == 200
        for name, body in AUDIENCES.items():
            response = put(http, admin, "audiences", name, body)
            assert response.status_code == 200, response.text
        events = [
            {"type": "identify", "userId": "ana", "traits": {"plan": "gold"}, "messageId": "ana-i"},
            order("ana", 1, 40, 80.0, ["dairy", "bakery"]),
            order("ana", 2, 10, 30.0, ["dairy"]),
            order("ana", 3, 2, 25.0, ["produce", "dairy"]),
            order("raj", 1, 5, 12.0, ["frozen"]),
        ]
        assert (
            http.post("/v1/batch", json={"batch": events}, auth=(kirana.write_key, "")).status_code
            == 200
        )
        kirana.drain()
        estimate = http.post("/v1/audiences/estimate", json=AUDIENCES["loyal"], headers=admin)
        assert estimate.json() == {"size": 1, "profiles": 2}
        report = http.post("/v1/segments/refresh", headers=admin).json()
        assert report["full"] is True
        assert report["audiences"]["loyal_big_spenders"]["entered"] == 1
        ana = http.get("/v1/profiles/ana", headers=admin).json()
        raj = http.get("/v1/profiles/raj", headers=admin).json()
    assert ana["computed_traits"] == {
        "orders_30d": 2,
        "total_spend": 135.0,
        "favourite_department": "dairy",
        "days_since_last_order": 2,
    }
    assert ana["audiences"] == ["big_spenders", "gold_by_sql", "loyal", "loyal_big_spenders"]
    assert raj["computed_traits"]["orders_30d"] == 1 and raj["audiences"] == []
    kirana.drain()
    entered = kirana.lake(
        "SELECT user_id, properties->>'$.audience' FROM events WHERE event = 'Audience Entered' "
        "ORDER BY 2"
    )
    assert entered == [
        ("ana", a) for a in ["big_spenders", "gold_by_sql", "loyal", "loyal_big_spenders"]
    ]


def test_realtime_entry_and_incremental_refresh(kirana_any: RunningKirana) -> None:
    """Runs with the consumers in a worker process too: derived events and refreshes
    then cross the process boundary (emit and refresh are calls to the other side)."""
    kirana = kirana_any
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        put(http, admin, "computed-traits", "orders_30d", TRAITS["orders_30d"])
        put(http, admin, "audiences", "loyal", AUDIENCES["loyal"])
        first = [order("mia", 1, 3, 10.0, ["snacks"]), order("leo", 1, 3, 10.0, ["snacks"])]
        http.post("/v1/batch", json={"batch": first}, auth=(kirana.write_key, ""))
        kirana.drain()
        assert http.post("/v1/segments/refresh", headers=admin).json()["profiles_considered"] == 2
        # mia's second order makes her loyal in real time, before any refresh
        http.post(
            "/v1/batch",
            json={"batch": [order("mia", 2, 1, 10.0, ["snacks"])]},
            auth=(kirana.write_key, ""),
        )

        def mia_is_loyal() -> bool:
            return http.get("/v1/profiles/mia", headers=admin).json()["audiences"] == ["loyal"]

        wait_for(mia_is_loyal)
        report = http.post("/v1/segments/refresh", headers=admin).json()
        assert report["full"] is False and report["profiles_considered"] == 1  # only mia
        history = http.get("/v1/audiences/loyal/history", headers=admin).json()
    assert [(h["change"], h["run_id"]) for h in history] == [("entered", "realtime")]
    kirana.drain()
    assert kirana.lake("SELECT count(*) FROM events WHERE event = 'Audience Entered'") == [(1,)]


def test_invalid_definitions_name_the_part(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        bad_trait = put(http, admin, "computed-traits", "x", {"aggregation": "median"})
        assert bad_trait.status_code == 422 and "aggregation" in bad_trait.json()["message"]
        unknown_ref = put(http, admin, "audiences", "y", {"conditions": {"audience": "nope"}})
        assert unknown_ref.status_code == 422 and "nope" in unknown_ref.json()["message"]
        ddl = put(http, admin, "audiences", "z", {"sql": "DROP TABLE profiles"})
        assert ddl.status_code == 422
        put(http, admin, "computed-traits", "orders_30d", TRAITS["orders_30d"])
        put(
            http,
            admin,
            "audiences",
            "uses",
            {"conditions": {"computed_trait": "orders_30d", "op": "gt", "value": 1}},
        )
        in_use = http.delete("/v1/computed-traits/orders_30d", headers=admin)
        assert in_use.status_code == 409 and "orders_30d" in in_use.json()["message"]
        viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
        assert put(http, viewer, "audiences", "v", AUDIENCES["loyal"]).status_code == 403


def test_a_merge_carries_traits_computed_traits_and_memberships(kirana: RunningKirana) -> None:
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    with kirana.client() as http:
        put(http, admin, "computed-traits", "orders_30d", TRAITS["orders_30d"])
        put(http, admin, "audiences", "loyal", AUDIENCES["loyal"])
        before = [
            {**order("x", 1, 3, 10.0, ["tea"]), "userId": None, "anonymousId": "device-9"},
            {
                "type": "identify",
                "anonymousId": "device-9",
                "traits": {"city": "Pune"},
                "messageId": "anon-i",
                "timestamp": (NOW - timedelta(days=3)).isoformat(),
            },
            order("zoe", 1, 2, 10.0, ["tea"]),
        ]
        before[0].pop("userId")
        http.post("/v1/batch", json={"batch": before}, auth=(kirana.write_key, ""))
        kirana.drain()
        http.post("/v1/segments/refresh", headers=admin)
        anon = http.get("/v1/profiles/device-9", headers=admin).json()
        zoe = http.get("/v1/profiles/zoe", headers=admin).json()
        assert anon["computed_traits"]["orders_30d"] == 1 and anon["audiences"] == []
        assert zoe["computed_traits"]["orders_30d"] == 1 and zoe["audiences"] == []
        # zoe logs in on the device: the anonymous profile merges into hers
        login = {
            "type": "identify",
            "userId": "zoe",
            "anonymousId": "device-9",
            "messageId": "login",
            "timestamp": (NOW - timedelta(days=1)).isoformat(),
        }
        http.post("/v1/batch", json={"batch": [login]}, auth=(kirana.write_key, ""))
        kirana.drain()
        http.post("/v1/segments/refresh", headers=admin)
        merged = http.get("/v1/profiles/device-9", headers=admin).json()
    assert merged["profile_id"] == zoe["profile_id"]
    assert merged["traits"] == {"city": "Pune"}
    assert merged["computed_traits"]["orders_30d"] == 2
    assert merged["audiences"] == ["loyal"]
    assert anon["profile_id"] in {m["from_profile"] for m in merged["merged_from"]}
    store = kirana.platform.profiles
    assert store.computed_values(anon["profile_id"]) == {}  # the absorbed profile left nothing
