"""The console over a real Kirana with demo-like data: sign-in, every page, roles, CSRF,
links between pages and nothing loaded from another host."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from kirana.console.router import PARTS
from tests.conftest import RunningKirana
from tests.console.conftest import csrf_of, sign_in
from tests.console.seed import EMAIL, USER_ID, Seeded

PAGES = [
    "/console",
    "/console/sources",
    "/console/sources/test",
    "/console/sources/test/debugger",
    "/console/profiles",
    f"/console/profiles/view?id={USER_ID}&type=user_id",
    "/console/audiences",
    "/console/audiences/new",
    "/console/destinations",
    "/console/destinations/crm",
    "/console/syncs/orders-to-files",
    "/console/experiments",
    "/console/models",
    "/console/content",
]

#: Console POST routes that change something (the estimate only reads, as in the API).
CHANGES = sorted(
    r.path
    for part in PARTS
    for r in part.router.routes
    if isinstance(r, APIRoute)
    and "POST" in r.methods
    and r.path not in {"/console/login", "/console/logout", "/console/audiences/estimate"}
)


def _concrete(path: str) -> str:
    return (
        path.replace("{name}", "crm" if "destinations" in path else "test")
        .replace("/syncs/test", "/syncs/orders-to-files")
        .replace("{key}", "checkout")
        .replace("{output}", "buy_again")
    )


def test_every_page_needs_a_session(seeded: tuple[RunningKirana, Seeded]) -> None:
    kirana, _ = seeded
    with httpx.Client(base_url=kirana.url) as anonymous:
        for page in PAGES:
            answer = anonymous.get(page)
            assert answer.status_code == 303, page
            assert answer.headers["location"].startswith("/console/login?next="), page
        for path in CHANGES:
            assert anonymous.post(_concrete(path), data={}).status_code == 303, path


def test_root_redirects_to_the_console(seeded: tuple[RunningKirana, Seeded]) -> None:
    kirana, _ = seeded
    with httpx.Client(base_url=kirana.url) as client:
        answer = client.get("/")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/console"


def test_every_page_renders_for_an_admin(admin: httpx.Client) -> None:
    for page in PAGES:
        answer = admin.get(page)
        assert answer.status_code == 200, (page, answer.text[:500])
        assert "text/html" in answer.headers["content-type"]
        assert "Content-Security-Policy" in answer.headers
        assert 'action="/console/logout"' in answer.text


def test_a_viewer_sees_every_page_but_no_change_forms(viewer: httpx.Client) -> None:
    for page in PAGES:
        answer = viewer.get(page)
        assert answer.status_code == 200, page
        actions = re.findall(r'<form method="post" action="([^"]+)"', answer.text)
        assert actions == ["/console/logout"], (page, actions)


def test_a_viewer_is_refused_every_change(viewer: httpx.Client) -> None:
    csrf = csrf_of(viewer)
    assert len(CHANGES) >= 10
    for path in CHANGES:
        answer = viewer.post(_concrete(path), data={"csrf": csrf, "definition": "{}"})
        assert answer.status_code == 403, path
        assert answer.json()["code"] == "forbidden"


def test_a_change_without_the_csrf_token_is_refused(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    before = [s.name for s in kirana.platform.store.list_sources()]
    for path in CHANGES:
        for form in ({"name": "sneaky"}, {"name": "sneaky", "csrf": "forged"}):
            answer = admin.post(_concrete(path), data=form)
            assert answer.status_code == 403, path
            assert answer.json()["code"] == "csrf_failed"
    assert [s.name for s in kirana.platform.store.list_sources()] == before


def test_sign_in_sets_a_strict_http_only_cookie_without_the_token(
    seeded: tuple[RunningKirana, Seeded],
) -> None:
    kirana, _ = seeded
    with httpx.Client(base_url=kirana.url) as client:
        answer = client.post("/console/login", data={"token": kirana.admin_token})
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert kirana.admin_token not in cookie
    assert kirana.admin_token[:12] not in cookie


def test_a_wrong_token_or_a_write_key_does_not_sign_in(
    seeded: tuple[RunningKirana, Seeded],
) -> None:
    kirana, _ = seeded
    with httpx.Client(base_url=kirana.url) as client:
        for token in ("kt_wrong", kirana.write_key, ""):
            answer = client.post("/console/login", data={"token": token})
            assert answer.status_code == 401
            assert "set-cookie" not in answer.headers
            assert "not a current access token" in answer.text


def test_signing_out_ends_the_session_even_a_copied_cookie(
    seeded: tuple[RunningKirana, Seeded],
) -> None:
    kirana, _ = seeded
    _, secret = kirana.platform.store.create_token("leaving", "viewer")
    browser, other = sign_in(kirana.url, secret), sign_in(kirana.url, secret)
    copied = httpx.Client(base_url=kirana.url, cookies=dict(browser.cookies))
    try:
        assert copied.get("/console").status_code == 200
        answer = browser.post("/console/logout", data={"csrf": csrf_of(browser)})
        assert answer.status_code == 303
        for client in (browser, copied, other):
            assert client.get("/console").status_code == 303
        again = sign_in(kirana.url, secret)  # a new sign-in works
        assert again.get("/console").status_code == 200
        again.close()
    finally:
        for client in (browser, other, copied):
            client.close()


def test_a_revoked_token_ends_its_console_session(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    assert admin.get("/console").status_code == 200
    token, secret = kirana.platform.store.create_token("short-lived", "admin")
    client = sign_in(kirana.url, secret)
    try:
        assert client.get("/console").status_code == 200
        kirana.platform.store.revoke_token(token.id)
        answer = client.get("/console")
    finally:
        client.close()
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")
    assert admin.get("/console").status_code == 200  # other sessions go on


def test_find_a_profile_by_email_and_read_its_timeline(admin: httpx.Client) -> None:
    found = admin.get("/console/profiles", params={"id": EMAIL.upper()})
    assert found.status_code == 303
    page = admin.get(found.headers["location"])
    assert page.status_code == 200
    assert f"<h1>{USER_ID} " in page.text
    assert EMAIL in page.text
    assert "Order Completed" in page.text and "Event timeline" in page.text
    missing = admin.get("/console/profiles", params={"id": "nobody@example.com"})
    assert missing.status_code == 404
    assert "no profile has the identifier" in missing.text


def test_user_ids_link_to_their_profiles(admin: httpx.Client) -> None:
    debugger = admin.get("/console/sources/test/debugger").text
    assert re.search(r'href="/console/profiles/view\?id=\d+&amp;type=user_id"', debugger)
    dead = admin.get("/console/destinations/crm").text
    assert 'href="/console/profiles/view?id=' in dead
    target = re.search(r'href="(/console/profiles/view\?id=[^"]+)"', dead).group(1)
    assert admin.get(target.replace("&amp;", "&")).status_code == 200


def test_the_debugger_shows_new_events_and_quarantined_ones(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    first = admin.get("/console/sources/test/live").json()
    assert any(r["quarantined"] for r in first["rows"])
    assert any(not r["quarantined"] for r in first["rows"])
    with httpx.Client(base_url=kirana.url, auth=(kirana.write_key, "")) as client:
        client.post("/v1/track", json={"userId": "u-new", "event": "Signed Up"})
    kirana.drain()
    later = admin.get("/console/sources/test/live", params={"after": first["after"]}).json()
    assert [r["name"] for r in later["rows"]] == ["Signed Up"]
    again = admin.get("/console/sources/test/live", params={"after": later["after"]}).json()
    assert again["rows"] == []
    bad = admin.get("/console/sources/test/live", params={"after": "x"})
    assert bad.status_code == 422 and "`after`" in bad.json()["message"]


def test_create_a_source_shows_its_key_once_and_rotation_shows_a_new_one(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    csrf = csrf_of(admin)
    created = admin.post("/console/sources", data={"csrf": csrf, "name": "website"})
    assert created.status_code == 200
    key = re.search(r'<p class="secret" id="new-key">([^<]+)</p>', created.text).group(1)
    assert kirana.platform.store.source_by_write_key(key).name == "website"
    assert key not in admin.get("/console/sources").text
    assert key not in admin.get("/console/sources/website").text
    rotated = admin.post(
        "/console/sources/website/rotate-key", data={"csrf": csrf, "overlap_seconds": "0"}
    )
    new_key = re.search(r'id="new-key">([^<]+)</p>', rotated.text).group(1)
    assert new_key != key
    assert kirana.platform.store.source_by_write_key(new_key).name == "website"
    disabled = admin.post("/console/sources/website/disable", data={"csrf": csrf})
    assert disabled.status_code == 303
    with httpx.Client(base_url=kirana.url, auth=(new_key, "")) as tracking:
        refused = tracking.post("/v1/track", json={"userId": "u", "event": "E"})
        assert refused.status_code == 403
        assert admin.post("/console/sources/website/enable", data={"csrf": csrf}).status_code == 303
        assert tracking.post("/v1/track", json={"userId": "u", "event": "E"}).status_code == 200
    duplicate = admin.post("/console/sources", data={"csrf": csrf, "name": "website"})
    assert duplicate.status_code == 409 and "already_exists" in duplicate.text
    audit = [
        e
        for e in kirana.platform.store.list_audit(limit=1000)
        if e.action.startswith("POST /console/sources") and e.actor_name == "admin"
    ]
    assert [(e.action, e.actor_name, e.status) for e in reversed(audit)] == [
        ("POST /console/sources", "admin", 200),
        ("POST /console/sources/{name}/rotate-key", "admin", 200),
        ("POST /console/sources/{name}/disable", "admin", 303),
        ("POST /console/sources/{name}/enable", "admin", 303),
        ("POST /console/sources", "admin", 409),
    ]
    assert not any(key in str(e.summary) or new_key in str(e.summary) for e in audit)


def test_build_estimate_and_save_an_audience(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    csrf = csrf_of(admin)
    definition = {
        "name": "buyers",
        "conditions": {"event": "Order Completed", "at_least": 1, "within_days": 3650},
    }
    estimate = admin.post(
        "/console/audiences/estimate", json=definition, headers={"X-CSRF-Token": csrf}
    )
    assert estimate.status_code == 200, estimate.text
    body = estimate.json()
    assert body["size"] == len(body["preview"]) > 0
    assert body["preview"][0]["url"].startswith("/console/profiles/view?id=")
    wrong = admin.post(
        "/console/audiences/estimate",
        json={"name": "buyers", "conditions": {"event": "Order Completed", "at_least": 0}},
        headers={"X-CSRF-Token": csrf},
    )
    assert wrong.status_code == 422 and "at_least" in wrong.json()["message"]
    unsaved = admin.post("/console/audiences", data={"csrf": csrf, "definition": "{"})
    assert unsaved.status_code == 422 and "not valid JSON" in unsaved.text
    import json

    saved = admin.post(
        "/console/audiences", data={"csrf": csrf, "definition": json.dumps(definition)}
    )
    assert saved.status_code == 303
    assert [d.name for d in kirana.platform.profiles.definitions("audience")] == ["buyers"]
    assert admin.get(saved.headers["location"]).status_code == 200


def test_an_estimate_needs_the_csrf_header(admin: httpx.Client) -> None:
    answer = admin.post("/console/audiences/estimate", json={"name": "x", "conditions": {}})
    assert answer.status_code == 403


def test_create_start_stop_an_experiment_and_read_its_report(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    csrf = csrf_of(admin)
    import json

    definition = {
        "key": "checkout",
        "variations": [{"key": "control"}, {"key": "one-page"}],
        "hash_attribute": "userId",
        "metrics": ["purchase"],
    }
    bad = admin.post("/console/experiments", data={"csrf": csrf, "definition": '{"key": "x"}'})
    assert bad.status_code == 422 and "invalid_definition" in bad.text
    made = admin.post(
        "/console/experiments", data={"csrf": csrf, "definition": json.dumps(definition)}
    )
    assert made.status_code == 303, made.text
    assert admin.post("/console/experiments/checkout/start", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=kirana.url, auth=(kirana.write_key, "")) as client:
        for user in ("1", "2", "3", "7"):
            assigned = client.post("/v1/experiments/assign", json={"userId": user})
            assert assigned.status_code == 200
            client.post("/v1/track", json={"userId": user, "event": "Order Completed"})
    kirana.drain()
    assert (
        admin.post("/console/experiments/checkout/analyse", data={"csrf": csrf}).status_code == 303
    )
    page = admin.get("/console/experiments/checkout")
    assert page.status_code == 200
    assert "sample ratio: p=" in page.text
    assert "chart-lift" in page.text and "chart-cumulative-purchase" in page.text
    again = admin.post("/console/experiments/checkout/start", data={"csrf": csrf})
    assert again.status_code == 409
    assert admin.post("/console/experiments/checkout/stop", data={"csrf": csrf}).status_code == 303
    assert kirana.platform.services  # the platform is still serving


def test_replay_a_dead_letter(admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]) -> None:
    kirana, data = seeded
    from kirana.destinations import service
    from kirana.destinations.extension import delivery_store
    from tests.console.seed import wait_for

    store = delivery_store(kirana.platform)
    dead = service.dead_letters(store, "crm", 10_000)
    data.refuse[0] = False
    answer = admin.post(
        "/console/destinations/crm/replay",
        data={"csrf": csrf_of(admin), "record_id": dead[0]["record_id"]},
    )
    assert answer.status_code == 303
    wait_for(lambda: data.receiver.accepted, "the replayed record to arrive")
    assert len(service.dead_letters(store, "crm", 10_000)) == len(dead) - 1
    assert len(data.receiver.accepted) == 1


def test_erasing_needs_the_identifier_typed_again(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    kirana, _ = seeded
    csrf = csrf_of(admin)
    form = {"csrf": csrf, "identifier": "2", "type": "user_id", "confirm": "3"}
    refused = admin.post("/console/profiles/erase", data=form)
    assert refused.status_code == 422 and "not_confirmed" in refused.text
    assert kirana.platform.profiles.profile(("user_id", "2")) is not None
    erased = admin.post("/console/profiles/erase", data={**form, "confirm": "2"})
    assert erased.status_code == 303
    assert kirana.platform.profiles.profile(("user_id", "2")) is None


ASSETS = ["/console/static/console.js", "/console/static/console.css"]


def _foreign_urls(text: str, host: str) -> list[str]:
    """URLs the browser would load or follow (attributes, CSS url(), script strings) that
    point at another host than Kirana's own."""
    found = re.findall(r'(?:src|href|action)\s*=\s*["\'](https?://[^"\']+)', text)
    found += re.findall(r"url\(\s*['\"]?(https?://[^)'\"]+)", text)
    return [u for u in found if urlsplit(u).netloc != host]


def test_nothing_is_loaded_from_another_host(admin: httpx.Client) -> None:
    host = urlsplit(str(admin.base_url)).netloc
    for path in [*PAGES, "/docs", "/redoc", "/console/login", *ASSETS]:
        answer = admin.get(path)
        assert answer.status_code == 200, path
        assert _foreign_urls(answer.text, host) == [], path
    for asset in ASSETS:  # our own scripts and styles name no URL at all
        assert "http://" not in admin.get(asset).text and "https://" not in admin.get(asset).text
    docs = admin.get("/docs").text
    assert "/console/static/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert "/console/static/redoc.standalone.js" in admin.get("/redoc").text
    assert b"cdn.redoc.ly" not in admin.get("/console/static/redoc.standalone.js").content
    for bundle in (
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "redoc.standalone.js",
        "plotly.min.js",
    ):
        answer = admin.get(f"/console/static/{bundle}")
        assert answer.status_code == 200 and len(answer.content) > 100_000, bundle
    assert admin.get("/console/static/../assets.py").status_code == 404


@pytest.mark.parametrize("name", ["missing.js", "console.py", "%2e%2e%2fassets.py"])
def test_unknown_assets_are_404(admin: httpx.Client, name: str) -> None:
    assert admin.get(f"/console/static/{name}").status_code == 404


def test_login_next_stays_in_the_console(seeded: tuple[RunningKirana, Seeded]) -> None:
    kirana, _ = seeded
    for target, expected in [
        ("/console/experiments", "/console/experiments"),
        ("https://evil.example/", "/console"),
        ("//evil.example/console", "/console"),
    ]:
        with httpx.Client(base_url=kirana.url) as client:
            answer = client.post(
                "/console/login", data={"token": kirana.viewer_token, "next": target}
            )
            assert answer.headers["location"] == expected


def test_a_viewer_signed_in_can_estimate(viewer: httpx.Client) -> None:
    answer = viewer.post(
        "/console/audiences/estimate",
        json={"name": "all", "conditions": {"event": "Product Viewed"}},
        headers={"X-CSRF-Token": csrf_of(viewer)},
    )
    assert answer.status_code == 200 and answer.json()["size"] > 0


def test_sign_in_client_helper_is_real(seeded: tuple[RunningKirana, Seeded]) -> None:
    kirana, _ = seeded
    client = sign_in(kirana.url, kirana.viewer_token)
    try:
        assert "viewer" in client.get("/console").text
    finally:
        client.close()


def test_models_show_current_runs_and_refuse_an_unknown_rollback(
    admin: httpx.Client, seeded: tuple[RunningKirana, Seeded]
) -> None:
    page = admin.get("/console/models")
    assert page.status_code == 200
    assert "buy_again" in page.text and "current" in page.text
    assert re.search(r"<code>r\d{8}T\d{6}Z-[0-9a-f]{6}</code>", page.text)
    refused = admin.post(
        "/console/models/buy_again/rollback", data={"csrf": csrf_of(admin), "to_run": "r-nope"}
    )
    assert refused.status_code == 422 and "`to_run`" in refused.json()["message"]


def test_the_evaluation_sits_next_to_its_baseline() -> None:
    from kirana.console.pages.models import evaluation

    rows = evaluation({"holdout_recall@10": 0.4, "baseline_ptopfreq_recall@10": 0.3, "rows": 5})
    assert rows == [
        {
            "measure": "recall@10",
            "model": 0.4,
            "baseline": "baseline_ptopfreq_recall@10",
            "base": 0.3,
        }
    ]


def test_content_lists_the_demo_placements(admin: httpx.Client) -> None:
    page = admin.get("/console/content").text
    assert "home_feed" in page and "product_page" in page


def test_run_a_sync_and_read_its_diff(admin: httpx.Client) -> None:
    listing = admin.get("/console/destinations").text
    assert 'href="/console/syncs/orders-to-files"' in listing and "not run yet" in listing
    ran = admin.post("/console/syncs/orders-to-files/run", data={"csrf": csrf_of(admin)})
    assert ran.status_code == 303
    page = admin.get(ran.headers["location"]).text
    assert "Sync orders-to-files ran" in page
    first = re.search(
        r'badge succeeded">succeeded</span></td><td class="num">(\d+)</td><td class="num">(\d+)',
        page,
    )
    assert first and first.group(1) == first.group(2) != "0"  # every row read was added
    missing = admin.post("/console/syncs/nope/run", data={"csrf": csrf_of(admin)})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("path", "kind", "definition"),
    [
        ("/console/metrics", "metric", {"key": "m-console", "type": "count", "event": "X"}),
        ("/console/flags", "flag", {"key": "f-console", "default": False}),
    ],
)
def test_metric_and_flag_definitions_save_or_come_back_with_the_error(
    admin: httpx.Client, path: str, kind: str, definition: dict
) -> None:
    csrf = csrf_of(admin)
    saved = admin.post(path, data={"csrf": csrf, "definition": json.dumps(definition)})
    assert saved.status_code == 303, saved.text
    page = admin.get(saved.headers["location"])
    assert f"{kind.capitalize()} {definition['key']} saved." in page.text
    refused = admin.post(path, data={"csrf": csrf, "definition": "[1, 2]"})
    assert refused.status_code == 422
    assert "must be a JSON object" in refused.text and "[1, 2]" in refused.text
