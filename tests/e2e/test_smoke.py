"""The shortest path through the product: one event in, one row in the lake."""

from __future__ import annotations

from tests.conftest import RunningKirana


def test_track_event_reaches_the_lake(kirana: RunningKirana) -> None:
    with kirana.client() as http:
        response = http.post(
            "/v1/track",
            auth=(kirana.write_key, ""),
            json={
                "userId": "u1",
                "event": "Order Completed",
                "messageId": "m-1",
                "properties": {"total": 12.5, "products": [{"product_id": "p1"}]},
            },
        )
    assert response.status_code == 200, response.text
    kirana.drain()
    rows = kirana.lake("SELECT message_id, user_id, event, properties->>'$.total' FROM events")
    assert rows == [("m-1", "u1", "Order Completed", "12.5")]
