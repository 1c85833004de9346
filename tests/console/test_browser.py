"""The console in a real browser: Debian's Chromium driven by Playwright against a real
``kirana serve`` with demo-like data sent through the tracking API.

Journeys of issue 17: sign in; find a profile by e-mail and open its timeline; build an
audience, see its size, save it; start an experiment, send exposures and conversions,
read its report; replay a dead letter; a viewer is refused every change. Every page is
watched for JavaScript errors, failed requests and requests to any other host, and saved
as a screenshot in ``test-artifacts/console/`` for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from kirana.config import load_settings
from kirana.runtime import open_store
from tests.conftest import free_port
from tests.console.seed import EMAIL, USER_ID, wait_for
from tests.destinations.receivers import WebhookReceiver

CHROMIUM = "/usr/bin/chromium"
KIRANA = str(Path(sys.executable).parent / "kirana")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"Debian's chromium is not installed ({CHROMIUM}); `apt-get install chromium`",
    ),
]


LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium (no browser download), for this module only.

    Not pytest-playwright's session-wide ``browser``: Playwright's sync API keeps an event
    loop running in the main thread while it is open, and every later test that calls
    ``asyncio.run`` would fail with "cannot be called from a running event loop".
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Served:
    url: str
    write_key: str
    admin: str
    viewer: str
    receiver: WebhookReceiver
    refuse: list[bool] = field(default_factory=lambda: [True])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``kirana serve`` in its own process on a free port, with a few demo shoppers."""
    data_dir = tmp_path_factory.mktemp("console-browser") / "data"
    store = open_store(load_settings(data_dir))
    _, write_key = store.create_source("web")
    _, admin = store.create_token("admin", "admin")
    _, viewer = store.create_token("viewer", "viewer")
    store.close()
    port = free_port()
    env = {**os.environ, "KIRANA_LAKE__LINGER_SECONDS": "0.2"}
    server = subprocess.Popen(
        [
            KIRANA,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    refuse = [True]
    receiver = WebhookReceiver(lambda batch: (400, {}) if refuse[0] else (200, {}))
    try:
        wait_for(lambda: _up(url), "kirana serve to answer", timeout=120)
        _seed(url, write_key, admin, receiver)
        yield Served(url, write_key, admin, viewer, receiver, refuse)
    finally:
        receiver.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _seed(url: str, write_key: str, admin: str, receiver: WebhookReceiver) -> None:
    from kirana.demo.loader import demo_events, post_batches
    from kirana.demo.showcase import demo_content

    auth = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=url, headers=auth, timeout=60) as api:
        destination = {
            "name": "crm",
            "kind": "webhook",
            "settings": {"url": receiver.url, "secret": "s" * 24},
            "routes": [{"stream": "events", "events": ["Order Completed"]}],
            "max_attempts": 1,
        }
        assert api.post("/v1/destinations", json=destination).status_code == 201
        metric = {"type": "binomial", "event": "Order Completed", "window_hours": 24 * 365}
        assert api.put("/v1/metrics/purchase", json=metric).status_code == 200
        _, events = demo_events(users=4)
        assert post_batches(url, write_key, events).rejected == 0
        with httpx.Client(base_url=url, auth=(write_key, "")) as tracking:
            batch = [{"type": "track", "event": "no ids"}]  # quarantined
            assert tracking.post("/v1/batch", json={"batch": batch}).status_code == 200
        wait_for(lambda: api.get("/v1/profiles/" + EMAIL).status_code == 200, "the demo profiles")
        wait_for(lambda: api.get("/v1/destinations/crm/dead-letters").json(), "a dead letter")
        api.post("/v1/segments/refresh")
        assert api.post("/v1/content/import", json=demo_content()).status_code == 200


@dataclass
class Watch:
    """What went wrong in the browser: console errors, uncaught exceptions, failed
    requests and any request to another host (aborted, so nothing leaves the machine)."""

    host: str
    problems: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: self.problems.append(f"failed: {r.method} {r.url} {r.failure}"),
        )

        def only_kirana(route) -> None:
            if urlsplit(route.request.url).netloc == self.host:
                route.continue_()
            else:
                self.problems.append(f"another host: {route.request.url}")
                route.abort()

        page.route("**/*", only_kirana)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _navigate(page, click) -> None:
    """Click something that loads a new page and wait until it has loaded everything, the
    icon included (acting earlier would cut a request off: a failed request)."""
    with page.expect_navigation(wait_until="networkidle"):
        click()


def _sign_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/console", wait_until="networkidle")
    assert "/console/login" in page.url
    page.get_by_label("Access token").fill(token)
    _navigate(page, lambda: page.get_by_label("Access token").press("Enter"))  # keyboard
    assert page.url == f"{url}/console"


def test_admin_journeys(served: Served, browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(urlsplit(served.url).netloc)
    watch.attach(page)
    page.on("dialog", lambda d: d.accept())
    _shot_login(page, served.url)
    _sign_in(page, served.url, served.admin)
    page.wait_for_selector("#chart-events .main-svg")  # Plotly drew the charts
    _shot(page, "01-overview")

    # find a profile by e-mail and open its timeline
    _navigate(page, lambda: page.get_by_role("link", name="Profiles").click())
    page.get_by_label("Identifier").fill(EMAIL)
    _navigate(page, lambda: page.get_by_role("button", name="Find").click())
    page.wait_for_selector("#timeline")
    assert page.locator("h1").inner_text().startswith(USER_ID)
    assert page.locator("table").last.locator("tbody tr").count() > 10
    assert "Order Completed" in page.content()
    _shot(page, "02-profile")

    # build an audience, see its size, save it
    page.goto(f"{served.url}/console/audiences/new", wait_until="networkidle")
    definition = {
        "name": "buyers",
        "description": "ordered at least once",
        "conditions": {"event": "Order Completed", "at_least": 1, "within_days": 3650},
    }
    with page.expect_response(
        lambda r: (
            r.url.endswith("/console/audiences/estimate")
            and '"buyers"' in (r.request.post_data or "")
        )
    ):  # the live estimate of what was typed (not of the example first shown)
        page.get_by_label("Definition (JSON)").fill(json.dumps(definition, indent=2))
    estimate = page.locator("#estimate.ok")
    estimate.wait_for()
    assert re.fullmatch(r"\d+ of \d+ profiles", estimate.inner_text())
    assert page.locator("#preview li a").count() > 0
    _shot(page, "03-audience-builder")
    _navigate(page, lambda: page.get_by_role("button", name="Save audience").click())
    page.wait_for_url(re.compile(r".*/console/audiences/buyers\?done=audience_saved.*"))
    assert "Audience buyers saved." in page.content()
    _shot(page, "04-audience")
    page.goto(f"{served.url}/console/audiences", wait_until="networkidle")
    _shot(page, "05-audiences")

    # create and start an experiment, send exposures and conversions, read the report
    page.goto(f"{served.url}/console/experiments", wait_until="networkidle")
    experiment = {
        "key": "checkout",
        "name": "Checkout redesign",
        "variations": [{"key": "control"}, {"key": "one-page"}],
        "hash_attribute": "userId",
        "metrics": ["purchase"],
    }
    page.get_by_label("Definition (JSON; fields in docs/experiments.md)").fill(
        json.dumps(experiment)
    )
    _navigate(page, lambda: page.get_by_role("button", name="Create draft").click())
    _navigate(page, lambda: page.get_by_role("button", name="Start").click())
    page.wait_for_url(re.compile(r".*done=experiment_started.*"))
    _send_exposures_and_conversions(served)
    _navigate(page, lambda: page.get_by_role("button", name="Analyse now").click())
    page.wait_for_url(re.compile(r".*done=refreshed.*"))
    assert "sample ratio: p=" in page.content()
    page.wait_for_selector("#chart-lift .main-svg")
    page.wait_for_selector("#chart-cumulative-purchase .main-svg")
    _shot(page, "06-experiment-report")
    page.goto(f"{served.url}/console/experiments", wait_until="networkidle")
    _shot(page, "07-experiments")

    # replay a dead letter
    page.goto(f"{served.url}/console/destinations/crm", wait_until="networkidle")
    served.refuse[0] = False
    before = page.locator("input[name=record_id]").count()
    assert before > 0
    page.locator("input[name=record_id]").first.check()
    _shot(page, "08-destination")
    _navigate(page, lambda: page.get_by_role("button", name=re.compile("Replay")).click())
    page.wait_for_url(re.compile(r".*done=replayed&name=1.*"))
    wait_for(lambda: served.receiver.accepted, "the replayed record to arrive")
    assert page.locator("input[name=record_id]").count() == before - 1
    page.goto(f"{served.url}/console/destinations", wait_until="networkidle")
    _shot(page, "09-destinations")

    # the remaining pages, each drawn without errors
    for path, name in [
        ("/console/sources", "10-sources"),
        ("/console/sources/web", "11-source"),
        ("/console/sources/web/debugger", "12-debugger"),
        ("/console/models", "12a-models"),
        ("/console/content", "12b-content"),
        ("/docs", "13-api-docs"),
        ("/redoc", "14-redoc"),
    ]:
        page.goto(served.url + path, wait_until="networkidle")
        _shot(page, name)
    page.goto(f"{served.url}/docs", wait_until="networkidle")
    page.wait_for_selector(".swagger-ui .info .title")
    page.goto(f"{served.url}/console/sources/web/debugger", wait_until="networkidle")
    assert page.locator("#live-events tbody tr.quarantined").count() >= 1
    with httpx.Client(base_url=served.url, auth=(served.write_key, "")) as tracking:
        tracking.post("/v1/track", json={"userId": "live-1", "event": "Live Check"})
    page.wait_for_selector("#live-events tbody tr >> text=Live Check", timeout=30_000)
    _navigate(page, lambda: page.get_by_role("button", name="Sign out").click())
    page.wait_for_url(re.compile(r".*/console/login.*"))
    context.close()
    assert watch.problems == []


def _shot_login(page, url: str) -> None:
    page.goto(f"{url}/console/login", wait_until="networkidle")
    _shot(page, "00-login")


def _send_exposures_and_conversions(served: Served) -> None:
    with httpx.Client(base_url=served.url, auth=(served.write_key, "")) as api:
        for user in ("1", "2", "3", "7", *(f"visitor-{i}" for i in range(40))):
            assigned = api.post("/v1/experiments/assign", json={"userId": user})
            assert assigned.status_code == 200
            variation = assigned.json()["assignments"][0]["variation_id"]
            if variation == "one-page" or user.endswith(("1", "5")):
                order = {"userId": user, "event": "Order Completed", "properties": {"total": 9}}
                assert api.post("/v1/track", json=order).status_code == 200
    admin = {"Authorization": f"Bearer {served.admin}"}
    with httpx.Client(base_url=served.url, headers=admin) as api:
        wait_for(
            lambda: api.get("/v1/experiments/checkout").json()["exposures"],
            "the exposures to be counted",
        )
        time.sleep(1.5)  # the lake loader lingers 0.2 s; let the last batch land


def test_a_viewer_sees_everything_and_is_refused_every_change(served: Served, browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(urlsplit(served.url).netloc)
    watch.attach(page)
    _sign_in(page, served.url, served.viewer)
    pages = [
        "/console",
        "/console/sources",
        "/console/sources/web",
        "/console/profiles",
        f"/console/profiles/view?id={USER_ID}&type=user_id",
        "/console/audiences",
        "/console/audiences/new",
        "/console/destinations",
        "/console/destinations/crm",
        "/console/experiments",
        "/console/models",
        "/console/content",
    ]
    for path in pages:
        page.goto(served.url + path, wait_until="networkidle")
        page.wait_for_load_state("networkidle")  # the builder's estimate must not be cut off
        forms = page.locator("form[method=post]")
        actions = [forms.nth(i).get_attribute("action") for i in range(forms.count())]
        assert actions == ["/console/logout"], (path, actions)
        assert (
            page.get_by_role(
                "button", name=re.compile("Save|Create|Erase|Start|Stop|Replay|Rotate|Disable|Roll")
            ).count()
            == 0
        )
    _shot(page, "15-viewer-content")
    page.goto(f"{served.url}/console/audiences/new", wait_until="networkidle")
    page.locator("#estimate.ok").wait_for()  # viewers may estimate, as in the API
    _shot(page, "16-viewer-builder")
    # a change sent anyway, with the session's own CSRF token, is refused
    statuses = page.evaluate(
        """async () => {
            const csrf = document.querySelector('input[name="csrf"]').value;
            const out = [];
            for (const path of ["/console/sources", "/console/experiments/checkout/stop",
                                "/console/destinations/crm/replay", "/console/audiences",
                                "/console/profiles/erase"]) {
                const body = new URLSearchParams({csrf, name: "x", definition: "{}",
                    identifier: "1", type: "user_id", confirm: "1"});
                const r = await fetch(path, {method: "POST", body});
                out.push(r.status);
            }
            return out;
        }"""
    )
    assert statuses == [403] * 5
    context.close()
    # the refused fetches answered 403: the browser reports them as console errors
    assert [p for p in watch.problems if "403" not in p] == []
