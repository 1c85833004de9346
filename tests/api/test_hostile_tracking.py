"""Hostile events over real HTTP into the real platform: valid events beside them land in
the lake exactly once, each hostile one is quarantined with the same code through
``/v1/track`` and ``/v1/batch``, and no consumer ever fails on what was accepted."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collect.hostile import SAFE_TEXT, SAFE_VALUES, Hostile, hostile_event, valid_event
from tests.conftest import RunningKirana

PROPERTIES = st.dictionaries(SAFE_TEXT, SAFE_VALUES, max_size=4)


def test_hostile_events_never_fail_good_ones_or_the_lake(kirana: RunningKirana) -> None:
    expected_lake: dict[str, dict] = {}
    expected_quarantine: list[tuple[str, str]] = []  # (marker in raw, code)
    auth = (kirana.write_key, "")

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data(), good=st.lists(PROPERTIES, min_size=1, max_size=4))
    def send(data, good) -> None:
        run = uuid.uuid4().hex[:12]
        hostiles: list[Hostile] = [
            data.draw(hostile_event(f"bad-{run}-{i}")) for i in range(data.draw(st.integers(1, 3)))
        ]
        goods = [(f"good-{run}-{i}", props) for i, props in enumerate(good)]
        parts = [valid_event(mid, props) for mid, props in goods] + [h.raw for h in hostiles]
        order = data.draw(st.permutations(range(len(parts))))
        body = b'{"batch": [' + b", ".join(parts[i] for i in order) + b"]}"
        with kirana.client() as http:
            response = http.post("/v1/batch", content=body, auth=auth)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["accepted"] == len(goods)
            by_index = {r["index"]: r for r in answer["rejected"]}
            for position, index in enumerate(order):
                if index < len(goods):
                    assert position not in by_index
                    continue
                hostile = hostiles[index - len(goods)]
                rejected = by_index[position]
                assert rejected["code"] == hostile.code, (hostile, rejected)
                assert hostile.field in rejected["reason"]
                # the same event alone: the same code, quarantined again
                alone = http.post("/v1/track", content=hostile.raw, auth=auth)
                assert alone.status_code == 400, alone.text
                assert alone.json()["code"] == hostile.code
                marker = f"bad-{run}-{index - len(goods)}"
                expected_quarantine.extend([(marker, hostile.code)] * 2)
        expected_lake.update(goods)

    send()
    kirana.drain()
    landed = kirana.lake("SELECT message_id, properties FROM events")
    ids = [row[0] for row in landed]
    assert sorted(ids) == sorted(expected_lake), "every valid event lands exactly once"
    for message_id, properties in landed:
        assert json.loads(properties or "{}") == expected_lake[message_id]
    quarantined = kirana.platform.store.list_quarantined(limit=100_000)
    markers = {marker for marker, _ in expected_quarantine}
    found = sorted(
        (marker, entry.code) for entry in quarantined for marker in markers if marker in entry.raw
    )
    assert found == sorted(expected_quarantine)
    for name, status in kirana.platform.consumer_status().items():
        assert status["errors"] == 0 and status["lag"] == 0, (name, status)
