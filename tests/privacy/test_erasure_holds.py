"""Erasure that always holds: every identifier is suppressed, wherever an event carries it;
people known only from the quarantine or from events not yet consumed are erased too; a
batch rewrites each store once. Each test checks every file under the data dir — raw bytes
(SQLite files and their WAL, log segments, Delta commit logs) and the decoded values of
every Parquet file — for every identifier of the person, then sends their events again
through the tracking API and checks that nothing of them is stored."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from kirana.api.app import create_app
from kirana.config import Settings
from kirana.runtime import Platform
from tests.conftest import RunningKirana


def leaks(data_dir: Path, needles: list[str]) -> list[str]:
    """Where under ``data_dir`` any needle is: raw bytes of every file, and every value of
    every Parquet file decoded (a dictionary- or RLE-encoded value is not plain bytes)."""
    found = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found += [f"{path.relative_to(data_dir)}: {n}" for n in needles if n.encode() in data]
        if data[:4] == b"PAR1" and data[-4:] == b"PAR1":
            text = str(pq.read_table(path).to_pylist())
            found += [f"{path.relative_to(data_dir)} (decoded): {n}" for n in needles if n in text]
    return found


def send(kirana: RunningKirana, batch: list[dict]) -> dict:
    with kirana.client() as http:
        response = http.post("/v1/batch", json={"batch": batch}, auth=(kirana.write_key, ""))
    assert response.status_code == 200, response.text
    return response.json()


def erase(kirana: RunningKirana, body: dict, path: str = "erasures") -> dict:
    with kirana.client() as http:
        response = http.post(
            f"/v1/privacy/{path}",
            json=body,
            headers={"Authorization": f"Bearer {kirana.admin_token}"},
            timeout=300,
        )
    assert response.status_code == 200, response.text
    return response.json()


def lake_rows(kirana: RunningKirana) -> int:
    return kirana.lake("SELECT count(*) FROM events")[0][0]


# -- identifiers only in traits or context ---------------------------------------------

CARA_ANON = "anon-cara-5d1e"
CARA_EMAIL = "cara-5d1e@example.org"
CARA_PHONE = "+44-7700-900-5d1e"
CARA_DEVICE = "device-cara-5d1e"


def cara_events(anon: str) -> list[dict]:
    """Cara never signs in: her e-mail and phone travel only in traits and context."""
    return [
        {
            "type": "page",
            "anonymousId": anon,
            "name": "Home",
            "context": {"traits": {"email": CARA_EMAIL}, "device": {"id": CARA_DEVICE}},
        },
        {"type": "identify", "anonymousId": anon, "traits": {"phone": CARA_PHONE}},
        {
            "type": "track",
            "anonymousId": anon,
            "event": "Product Viewed",
            "context": {"traits": {"phone": CARA_PHONE}},
        },
    ]


def test_identifiers_only_in_traits_and_context_are_erased_and_suppressed(
    kirana_any: RunningKirana,
) -> None:
    k = kirana_any
    bystander = {"type": "track", "userId": "dev-77c1", "event": "Product Viewed"}
    assert send(k, [*cara_events(CARA_ANON), bystander])["accepted"] == 4
    k.drain()
    needles = [CARA_ANON, CARA_EMAIL, CARA_PHONE, CARA_DEVICE]
    assert leaks(k.settings.data_dir, needles), "her data must be there before the erasure"

    report = erase(k, {"identifier": CARA_EMAIL.upper()})  # e-mails compare in lower case

    assert {(i["type"], i["value"]) for i in report["identities"]} == {
        ("anonymous_id", CARA_ANON),
        ("email", CARA_EMAIL),
        ("phone", CARA_PHONE),
        ("device_id", CARA_DEVICE),
    }
    assert report["lake_rows_deleted"] == 3
    assert leaks(k.settings.data_dir, needles) == []

    # each identifier alone, under a new anonymous id, is enough to stop an event
    fresh = [
        {"type": "track", "anonymousId": "anon-new-1", "event": "A",
         "context": {"traits": {"email": CARA_EMAIL}}},
        {"type": "identify", "anonymousId": "anon-new-2", "traits": {"phone": CARA_PHONE}},
        {"type": "track", "anonymousId": "anon-new-3", "event": "B",
         "context": {"device": {"id": CARA_DEVICE}}},
        {"type": "track", "anonymousId": CARA_ANON, "event": "C"},
    ]  # fmt: skip
    after = send(k, [*fresh, bystander])
    assert after["accepted"] == 1 and after["suppressed"] == len(fresh)
    k.drain()
    assert leaks(k.settings.data_dir, [*needles, "anon-new-"]) == []
    assert k.lake("SELECT count(*) FROM events WHERE user_id = 'dev-77c1'") == [(2,)]

    # an event is the person's by its strongest identifier: a not-erased userId aliasing
    # her old anonymous id is that user's event, kept as sent (docs/profiles.md)
    alias = {"type": "alias", "userId": "cara-signed-up", "previousId": CARA_ANON}
    assert send(k, [alias])["accepted"] == 1
    k.drain()
    kept = "SELECT previous_id FROM events WHERE user_id = 'cara-signed-up'"
    assert k.lake(kept) == [(CARA_ANON,)]


# -- a person known only from the quarantine ------------------------------------------

QUINN = "quinn-8a3b"
QUINN_EMAIL = "quinn-8a3b@example.net"


def quinn_invalid() -> list[dict]:
    return [
        {"type": "track", "userId": QUINN, "event": "Bad", "properties": ["not", "an", "object"],
         "context": {"traits": {"email": QUINN_EMAIL}}},
        {"type": "identify", "userId": QUINN, "traits": "not an object"},
    ]  # fmt: skip


def test_a_person_only_in_the_quarantine_is_erased_and_their_bad_events_are_not_kept(
    kirana: RunningKirana,
) -> None:
    body = send(kirana, [*quinn_invalid(), {"type": "track", "userId": "x-1", "event": "Bad",
                                            "properties": 3}])  # fmt: skip
    assert len(body["rejected"]) == 3
    kirana.drain()
    assert len(kirana.platform.store.list_quarantined()) == 3
    assert leaks(kirana.settings.data_dir, [QUINN, QUINN_EMAIL])

    report = erase(kirana, {"identifier": QUINN, "type": "user_id"})

    assert report["profile_id"] is None
    assert report["suppressed"] == [{"type": "user_id", "value": QUINN}]
    assert report["quarantine_rows_deleted"] == 2
    assert report["log_records_redacted"] == 2
    assert leaks(kirana.settings.data_dir, [QUINN, QUINN_EMAIL]) == []

    # her invalid events are still refused with their reason, but not quarantined
    again = send(kirana, quinn_invalid())
    assert len(again["rejected"]) == 2 and again["accepted"] == 0
    single = kirana.client().post("/v1/track", json=quinn_invalid()[0], auth=(kirana.write_key, ""))
    assert single.status_code == 400 and "properties" in single.json()["message"]
    kirana.drain()
    assert len(kirana.platform.store.list_quarantined()) == 1  # x-1's only
    assert leaks(kirana.settings.data_dir, [QUINN, QUINN_EMAIL]) == []


# -- acknowledged, not yet consumed ----------------------------------------------------

DANA = "dana-2c7f"
DANA_ANON = "anon-dana-2c7f"
DANA_EMAIL = "dana-2c7f@example.com"


def test_events_acknowledged_but_not_consumed_are_erased_with_everything_they_link(
    settings: Settings,
) -> None:
    """The consumers are stopped while Dana's events are acknowledged, and start only once
    the erasure has begun: no profile holds her user id when it is asked for, and only her
    unconsumed identify links her anonymous id and e-mail to it."""
    platform = Platform.open(settings)
    _, write_key = platform.store.create_source("web")
    _, admin = platform.store.create_token("admin", "admin")
    auth = {"Authorization": f"Bearer {admin}"}
    dana = [
        {"type": "page", "anonymousId": DANA_ANON, "name": "Home"},
        {"type": "identify", "anonymousId": DANA_ANON, "userId": DANA,
         "traits": {"email": DANA_EMAIL}},
        {"type": "track", "anonymousId": DANA_ANON, "event": "Product Added"},
        {"type": "track", "userId": DANA, "event": "Bad", "properties": []},
    ]  # fmt: skip
    other = {"type": "track", "userId": "eve-90", "event": "Order Completed"}
    try:
        with TestClient(create_app(platform, manage_lifecycle=False)) as http:
            sent = http.post("/v1/batch", json={"batch": [*dana, other]}, auth=(write_key, ""))
            assert sent.status_code == 200 and sent.json()["accepted"] == 4
            assert platform.profiles.profile(("user_id", DANA)) is None  # nothing consumed

            answer: dict = {}

            def ask() -> None:
                body = {"identifier": DANA, "type": "user_id"}
                answer["r"] = http.post("/v1/privacy/erasures", json=body, headers=auth)

            asking = threading.Thread(target=ask)
            asking.start()
            deadline = time.monotonic() + 30
            while not platform.suppression.holds(("user_id", DANA)):
                assert time.monotonic() < deadline, "the erasure did not begin"
                time.sleep(0.01)
            platform.start()  # the consumers now read what was acknowledged before
            asking.join(timeout=240)
            response = answer["r"]
            assert response.status_code == 200, response.text
            report = response.json()
            assert {i["value"] for i in report["suppressed"]} == {DANA, DANA_ANON, DANA_EMAIL}
            assert report["profile_id"] is not None
            assert report["quarantine_rows_deleted"] == 1

            needles = [DANA, DANA_ANON, DANA_EMAIL]
            assert leaks(settings.data_dir, needles) == []
            again = http.post("/v1/batch", json={"batch": [*dana, other]}, auth=(write_key, ""))
            assert again.json()["accepted"] == 1 and again.json()["suppressed"] == 3
            assert platform.drain(timeout=60)
            assert leaks(settings.data_dir, needles) == []
            lake = DeltaTable(settings.lake_dir / "events").to_pyarrow_table()
            assert lake.column("user_id").to_pylist() == ["eve-90", "eve-90"]
    finally:
        platform.close()


# -- many people at once ---------------------------------------------------------------


def person(n: int) -> dict[str, str]:
    return {
        "user": f"batch-user-{n:03d}-q",
        "anon": f"batch-anon-{n:03d}-q",
        "email": f"batch-{n:03d}-q@example.com",
    }


def history(n: int) -> list[dict]:
    p = person(n)
    return [
        {"type": "page", "anonymousId": p["anon"], "name": "Home"},
        {"type": "identify", "anonymousId": p["anon"], "userId": p["user"],
         "traits": {"email": p["email"]}},
        {"type": "track", "userId": p["user"], "event": "Order Completed",
         "properties": {"total": n}},
    ]  # fmt: skip


def erase_commits(table: Path) -> int:
    return sum(1 for c in DeltaTable(table).history() if c.get("kirana.operation") == "erase")


def test_a_batch_erases_everyone_with_one_rewrite_of_each_store(
    kirana_any: RunningKirana,
) -> None:
    k = kirana_any
    gone, kept = range(0, 24), range(24, 30)
    send(k, [e for n in [*gone, *kept] for e in history(n)])
    k.drain()
    targets = [{"identifier": person(n)[("user", "anon", "email")[n % 3]]} for n in gone] + [
        {"identifier": "never-seen-b7", "type": "user_id"}
    ]

    report = erase(k, {"people": targets}, "erasures/batch")

    assert report["lake_rows_deleted"] == 3 * len(gone)
    assert len(report["people"]) == len(targets)
    assert all(len(p["suppressed"]) == 3 and p["profile_ids"] for p in report["people"][:-1])
    assert report["people"][-1]["suppressed"] == [{"type": "user_id", "value": "never-seen-b7"}]
    stores = {key.split(" ", 1)[1] for key in report["rewrites"]}
    assert {"operational store", "profile store"} <= stores
    assert any(s.endswith("events") for s in stores)
    assert set(report["rewrites"].values()) == {1}, report["rewrites"]
    assert erase_commits(k.settings.lake_dir / "events") == 1

    needles = [v for n in gone for v in person(n).values()]
    assert leaks(k.settings.data_dir, needles) == []
    again = send(k, [e for n in gone for e in history(n)] + history(kept[0]))
    assert again["suppressed"] == 3 * len(gone) and again["accepted"] == 3
    k.drain()
    assert leaks(k.settings.data_dir, needles) == []
    assert lake_rows(k) == 3 * len(kept) + 3
    with k.client() as http:
        admin = {"Authorization": f"Bearer {k.admin_token}"}
        for n in kept:
            profile = http.get(f"/v1/profiles/{person(n)['user']}", headers=admin)
            assert profile.status_code == 200 and profile.json()["traits"]


def test_cli_erases_a_file_of_people_in_one_batch(settings: Settings, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from kirana.cli.main import app

    platform = Platform.open(settings)
    _, write_key = platform.store.create_source("web")
    with TestClient(create_app(platform)) as http:
        events = [e for n in range(6) for e in history(n)]
        assert http.post("/v1/batch", json={"batch": events}, auth=(write_key, "")).json()[
            "accepted"
        ] == len(events)
        assert platform.drain(timeout=60)
    listed = tmp_path / "people.txt"
    listed.write_text("# erasure requests\n" + "\n".join(person(n)["email"] for n in (1, 2)) + "\n")
    result = CliRunner().invoke(
        app,
        ["privacy", "delete", person(0)["user"], "--file", str(listed),
         "--data-dir", str(settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["lake_rows_deleted"] == 9
    assert set(printed["rewrites"].values()) == {1}
    assert erase_commits(settings.lake_dir / "events") == 1
    needles = [v for n in (0, 1, 2) for v in person(n).values()]
    assert leaks(settings.data_dir, needles) == []
    assert leaks(settings.data_dir, list(person(3).values()))  # the others stay


def test_cli_sends_many_people_to_the_running_api_as_one_batch(kirana: RunningKirana) -> None:
    import json

    from typer.testing import CliRunner

    from kirana.cli.main import app

    send(kirana, [e for n in range(4) for e in history(n)])
    kirana.drain()
    result = CliRunner().invoke(
        app,
        ["privacy", "delete", person(0)["user"], person(1)["email"], "--url", kirana.url,
         "--token", kirana.admin_token, "--data-dir", str(kirana.settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert [p["identifier"] for p in printed["people"]] == [person(0)["user"], person(1)["email"]]
    assert printed["lake_rows_deleted"] == 6
    assert erase_commits(kirana.settings.lake_dir / "events") == 1
    assert leaks(kirana.settings.data_dir, [*person(0).values(), *person(1).values()]) == []
