"""No credential comes back out: every secret spelling through every surface that shows one.

One running Kirana (a real HTTP server over a tmp data dir) holds a destination, a sync,
a replication source or a warehouse DSN per spelling. Destinations that talk HTTP point
at a real server that refuses every request and echoes it back (path, headers) in its
error body; the databases point at closed ports, so every object also gathers a stored
``last_error`` from a real failure. Then each surface (API answers, CLI output, stored
errors, the server's log) is read once, and one test per (surface, spelling) asserts
that none of the spelling's secrets is in it, and that the surface did show the object.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.config import load_settings
from tests.conftest import RunningKirana, _running, free_port
from tests.console.conftest import sign_in
from tests.destinations.receivers import EchoingReceiver

pytestmark = pytest.mark.slow


MARK = "Zq9x"
"""Every secret of these tests ends with it: found anywhere, a piece of a secret leaked."""


def secret(tag: str) -> str:
    return f"S3cr3t-{tag}-{MARK}"


@dataclass
class Spelling:
    name: str
    secrets: list[str]
    destination: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    warehouse_dsn: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def postgres_source(self) -> dict[str, Any] | None:
        """A PostgreSQL source: removing it drops its slot, which fails on a closed port."""
        return self.source if self.source and self.source["kind"] == "postgres" else None


def spellings(echo: str, closed: int) -> list[Spelling]:
    """Each credential spelling of the issue, as the object that would hold it."""
    hook = {"secret": secret("hmac-filler-long")}
    pg = f"host=127.0.0.1 port={closed} user=app dbname=shop"

    def webhook(name: str, **settings: Any) -> dict[str, Any]:
        return {"name": name, "kind": "webhook", "settings": {**hook, **settings}}

    def dest(name: str, kind: str, **settings: Any) -> dict[str, Any]:
        return {"name": name, "kind": kind, "settings": settings}

    quoted = "S3 cr3t 'q' Zq9x"
    return [
        Spelling(
            "header",
            [secret("hdr")],
            webhook(
                "header",
                url=f"http://{echo}/h",
                headers={"Authorization": f"Bearer {secret('hdr')}"},
            ),
        ),
        Spelling(
            "url-userinfo",
            [secret("ui")],
            webhook("url-userinfo", url=f"http://app:{secret('ui')}@{echo}/h"),
        ),
        Spelling(
            "url-query",
            [secret("tok"), secret("ak")],
            webhook(
                "url-query", url=f"http://{echo}/h?token={secret('tok')}&api_key={secret('ak')}"
            ),
        ),
        Spelling(
            "hmac",
            [secret("hmac-signing-key")],
            webhook("hmac", url=f"http://{echo}/h", secret=secret("hmac-signing-key")),
        ),
        Spelling(
            "segment-write-key",
            [secret("wk"), base64.b64encode(f"{secret('wk')}:".encode()).decode()],  # Basic auth
            dest("segment-write-key", "segment", url=f"http://{echo}", write_key=secret("wk")),
        ),
        Spelling(
            "libpq-password",
            [secret("pg1")],
            dest("libpq-password", "postgres", dsn=f"{pg} password={secret('pg1')}", table="t"),
            {"kind": "postgres", "name": "libpq_password", "dsn": f"{pg} password={secret('pg1')}"},
            f"{pg} password={secret('pg1')}",
        ),
        Spelling(
            "libpq-password-spaced",
            [secret("pg2")],
            dest(
                "libpq-password-spaced",
                "postgres",
                dsn=f"password = {secret('pg2')} {pg}",
                table="t",
            ),
            {"kind": "postgres", "name": "libpq_spaced", "dsn": f"password = {secret('pg2')} {pg}"},
            f"password = {secret('pg2')} {pg}",
        ),
        Spelling(
            "libpq-password-quoted",
            [quoted, "S3 cr3t \\'q\\' Zq9x"],
            dest(
                "libpq-password-quoted",
                "postgres",
                dsn=f"{pg} password='S3 cr3t \\'q\\' Zq9x'",
                table="t",
            ),
            {
                "kind": "postgres",
                "name": "libpq_quoted",
                "dsn": f"{pg} password='S3 cr3t \\'q\\' Zq9x'",
            },
            f"{pg} password='S3 cr3t \\'q\\' Zq9x'",
        ),
        Spelling(
            "postgres-uri",
            [secret("pg3")],
            dest(
                "postgres-uri",
                "postgres",
                dsn=f"postgresql://app:{secret('pg3')}@127.0.0.1:{closed}/shop",
                table="t",
            ),
            {
                "kind": "postgres",
                "name": "postgres_uri",
                "dsn": f"postgresql://app:{secret('pg3')}@127.0.0.1:{closed}/shop",
            },
            f"postgresql://app:{secret('pg3')}@127.0.0.1:{closed}/shop",
        ),
        Spelling(
            "mysql-uri",
            [secret("my")],
            source={
                "kind": "mysql",
                "name": "mysql_uri",
                "dsn": f"mysql://repl:{secret('my')}@127.0.0.1:{closed}/shop",
            },
        ),
        Spelling(
            "redis-uri-no-user",
            [secret("rd1")],
            dest(
                "redis-uri-no-user", "redis", url=f"redis://:{secret('rd1')}@127.0.0.1:{closed}/0"
            ),
        ),
        Spelling(
            "rediss-uri",
            [secret("rd2")],
            dest("rediss-uri", "redis", url=f"rediss://app:{secret('rd2')}@127.0.0.1:{closed}/0"),
        ),
        Spelling(
            "redis-query-password",
            [secret("rd3")],
            dest(
                "redis-query-password",
                "redis",
                url=f"redis://127.0.0.1:{closed}/0?password={secret('rd3')}",
            ),
        ),
        Spelling(
            "smtp-password",
            [secret("smtp")],
            dest(
                "smtp-password",
                "email",
                host="127.0.0.1",
                port=closed,
                from_address="shop@example.com",
                subject="hi",
                body="hello $email",
                username="mailer",
                password=secret("smtp"),
            ),
        ),
    ]


@dataclass
class Shown:
    """What each surface showed, per spelling: (text, the object's name it must mention)."""

    texts: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def cli(data_dir: Path, *args: str) -> str:
    # wide enough that rich tables neither wrap nor elide a value (a split secret hides)
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "1000"})
    try:
        return result.output + result.stderr
    except ValueError:
        return result.output


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shown]:
    data_dir = tmp_path_factory.mktemp("secrets") / "data"
    settings = load_settings(
        data_dir, lake={"linger_seconds": 0.2}, replication={"every_seconds": 0.5}
    )
    echo = EchoingReceiver()
    out = Shown()
    handler = _Collect(out.log)
    logging.getLogger().addHandler(handler)
    try:
        for kirana in _running(settings, "all"):
            _exercise(kirana, data_dir, spellings(echo.base, free_port()), out)
        yield out
    finally:
        logging.getLogger().removeHandler(handler)
        echo.close()


def _exercise(k: RunningKirana, data_dir: Path, cases: list[Spelling], out: Shown) -> None:
    admin = {"Authorization": f"Bearer {k.admin_token}"}
    viewer = {"Authorization": f"Bearer {k.viewer_token}"}

    def put(surface: str, case: Spelling, text: str, mention: str) -> None:
        out.texts[(surface, case.name)] = (text, mention)

    with k.client() as http:
        for case in cases:
            if case.destination:
                d = {**case.destination, "routes": [{}], "backoff_seconds": 0.05}
                created = http.post("/v1/destinations", json=d, headers=admin)
                assert created.status_code == 201, created.text
                put("api: POST /v1/destinations", case, created.text, case.name)
                sync = {
                    "name": f"s-{case.name}",
                    "source": {"sql": "SELECT 1 AS id"},
                    "key": "id",
                    "destination": case.name,
                }
                made = http.post("/v1/syncs", json=sync, headers=admin)
                assert made.status_code == 201, made.text
                put("api: POST /v1/syncs", case, made.text, case.name)
            if case.source:
                source = {**case.source, "tables": [{"name": "orders"}]}
                added = http.post("/v1/replication/sources", json=source, headers=admin)
                assert added.status_code == 201, added.text
                put("api: POST /v1/replication/sources", case, added.text, case.source["name"])
                cli_name = case.source["name"] + "_cli"
                command = "add-postgres" if case.source["kind"] == "postgres" else "add-mysql"
                text = cli(
                    data_dir,
                    "sources",
                    command,
                    cli_name,
                    "--dsn",
                    case.source["dsn"],
                    "--table",
                    "orders",
                    # saved unchecked: the job's failure must show in status (the check's
                    # refusal is tests/cli/test_sources_postgres_cli.py)
                    *(["--no-check"] if command == "add-postgres" else []),
                )
                put("cli: kirana sources add-*", case, text, cli_name)
        # one event for every destination: each tries, fails and stores its error
        event = {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m1"}
        assert (
            http.post("/v1/batch", json={"batch": [event]}, auth=(k.write_key, "")).status_code
            == 200
        )
        named = [c for c in cases if c.destination]

        def all_failed() -> bool:
            rows = http.get("/v1/destinations/status", headers=admin).json()["destinations"]
            return all(r["last_error"] for r in rows) and len(rows) == len(named)

        wait_for(all_failed, "every destination to record a failed delivery")
        sourced = [c for c in cases if c.source]

        def sources_failed() -> bool:
            rows = http.get("/v1/replication/sources", headers=admin).json()
            return len(rows) == 2 * len(sourced) and all(r["last_error"] for r in rows)

        wait_for(sources_failed, "the replication job to record each source's failure")

        dest_list = http.get("/v1/destinations", headers=viewer).text
        dest_status = http.get("/v1/destinations/status", headers=admin).text
        sync_list = http.get("/v1/syncs", headers=viewer).text
        source_list = http.get("/v1/replication/sources", headers=admin).text
        cli_dest_list = cli(data_dir, "destinations", "list")
        cli_dest_status = cli(data_dir, "destinations", "status")
        cli_sources_list = cli(data_dir, "sources", "list")
        cli_sources_status = cli(data_dir, "sources", "status")
        cli_sync_list = cli(data_dir, "syncs", "list")
        console = sign_in(k.url, k.admin_token)
        console_list = html.unescape(console.get("/console/destinations").text)
        for case in named:
            n = case.name
            put("api: GET /v1/destinations", case, dest_list, n)
            put("api: GET /v1/destinations/status", case, dest_status, n)
            one = http.get(f"/v1/destinations/{n}", headers=viewer)
            put("api: GET /v1/destinations/{name}", case, one.text, n)
            put(
                "api: GET dead-letters + records",
                case,
                http.get(f"/v1/destinations/{n}/records", headers=admin).text
                + http.get(f"/v1/destinations/{n}/dead-letters", headers=admin).text,
                "",
            )
            # the answer sent back unchanged (masks included) replaces and keeps secrets
            body = {k2: v for k2, v in one.json().items() if k2 != "health"}
            again = http.post(
                "/v1/destinations", params={"replace": "true"}, json=body, headers=admin
            )
            assert again.status_code == 201, again.text
            put("api: POST /v1/destinations?replace", case, again.text, n)
            put("api: GET /v1/syncs", case, sync_list, f"s-{n}")
            put(
                "api: GET /v1/syncs/{name}",
                case,
                http.get(f"/v1/syncs/s-{n}", headers=viewer).text,
                f"s-{n}",
            )
            definition = data_dir.parent / f"{n}.json"
            definition.write_text(json.dumps({**case.destination, "name": f"{n}-cli"}))
            put(
                "cli: kirana destinations create",
                case,
                cli(data_dir, "destinations", "create", "-f", str(definition)),
                f"{n}-cli",
            )
            put("cli: kirana destinations list", case, cli_dest_list, n)
            put("cli: kirana destinations show", case, cli(data_dir, "destinations", "show", n), n)
            put("cli: kirana destinations status", case, cli_dest_status, n)
            put("cli: kirana syncs list", case, cli_sync_list, f"s-{n}")
            put("console: /console/destinations", case, console_list, n)
            page = html.unescape(console.get(f"/console/destinations/{n}").text)
            put("console: /console/destinations/{name}", case, page, n)
        console.close()
        for case in sourced:
            n = case.source["name"]
            put("api: GET /v1/replication/sources", case, source_list, n)
            put(
                "api: GET /v1/replication/sources/{name}",
                case,
                http.get(f"/v1/replication/sources/{n}", headers=admin).text,
                n,
            )
            synced = http.post(f"/v1/replication/sources/{n}/sync", headers=admin)
            assert synced.status_code == 502, synced.text
            put(
                "api: POST /v1/replication/sources/{name}/sync (error)",
                case,
                synced.text,
                "sync_failed",
            )
            put("cli: kirana sources list", case, cli_sources_list, n)
            put("cli: kirana sources status", case, cli_sources_status, n)
            put(
                "cli: kirana sources sync (error)",
                case,
                cli(data_dir, "sources", "sync", n),
                "error",
            )
            if case.postgres_source:
                put(
                    "api: DELETE /v1/replication/sources/{name} (error)",
                    case,
                    _remove(http, n, admin),
                    "source_unreachable",
                )
                text = _cli_remove(data_dir, f"{n}_cli")
                put(
                    "cli: kirana sources remove (error)",
                    case,
                    text,
                    "cannot drop the replication slot",
                )
        for case in cases:
            if case.warehouse_dsn:
                answer = http.post(
                    "/v1/warehouse/export",
                    json={"dsn": case.warehouse_dsn, "tables": []},
                    headers=admin,
                )
                assert answer.status_code == 422, answer.text
                put("api: POST /v1/warehouse/export (error)", case, answer.text, "export_failed")
                put(
                    "cli: kirana warehouse export (error)",
                    case,
                    cli(data_dir, "warehouse", "export", "--dsn", case.warehouse_dsn),
                    "error",
                )
        # the audit log recorded every change above, with its request body summarised
        audit = http.get("/v1/audit", params={"limit": 1000}, headers=admin).text
        for case in cases:
            for kind, mention in (
                ("destination", case.name),
                ("source", (case.source or {}).get("name")),
                ("warehouse_dsn", "/v1/warehouse/export"),
            ):
                if getattr(case, kind):
                    put(f"api: GET /v1/audit ({kind})", case, audit, str(mention))


def _remove(http: Any, name: str, admin: dict[str, str]) -> str:
    """DELETE a source; the serve job may hold it for a moment (409 busy): ask again."""
    for _ in range(50):
        answer = http.delete(f"/v1/replication/sources/{name}", headers=admin)
        if answer.status_code != 409:
            assert answer.status_code == 502, answer.text
            return answer.text
        time.sleep(0.1)
    raise AssertionError(f"source {name} stayed busy")


def _cli_remove(data_dir: Path, name: str) -> str:
    for _ in range(50):
        text = cli(data_dir, "sources", "remove", name)
        if "is being replicated by another process" not in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"source {name} stayed busy")


SURFACES_BY_KIND = {
    "destination": [
        "api: POST /v1/destinations",
        "api: POST /v1/destinations?replace",
        "api: GET /v1/destinations",
        "api: GET /v1/destinations/{name}",
        "api: GET /v1/destinations/status",
        "api: GET dead-letters + records",
        "api: POST /v1/syncs",
        "api: GET /v1/syncs",
        "api: GET /v1/syncs/{name}",
        "cli: kirana destinations create",
        "cli: kirana destinations list",
        "cli: kirana destinations show",
        "cli: kirana destinations status",
        "cli: kirana syncs list",
        "console: /console/destinations",
        "console: /console/destinations/{name}",
        "api: GET /v1/audit (destination)",
    ],
    "source": [
        "api: POST /v1/replication/sources",
        "api: GET /v1/replication/sources",
        "api: GET /v1/replication/sources/{name}",
        "api: POST /v1/replication/sources/{name}/sync (error)",
        "cli: kirana sources add-*",
        "cli: kirana sources list",
        "cli: kirana sources status",
        "cli: kirana sources sync (error)",
        "api: GET /v1/audit (source)",
    ],
    "postgres_source": [
        "api: DELETE /v1/replication/sources/{name} (error)",
        "cli: kirana sources remove (error)",
    ],
    "warehouse_dsn": [
        "api: GET /v1/audit (warehouse_dsn)",
        "api: POST /v1/warehouse/export (error)",
        "cli: kirana warehouse export (error)",
    ],
}


def _pairs() -> list[tuple[str, str]]:
    cases = spellings("echo:1", 1)
    pairs = []
    for kind, surfaces in SURFACES_BY_KIND.items():
        for case in cases:
            if getattr(case, kind):
                pairs.extend((surface, case.name) for surface in surfaces)
    return pairs


@pytest.mark.parametrize(("surface", "spelling"), _pairs())
def test_no_surface_shows_a_secret(shown: Shown, surface: str, spelling: str) -> None:
    text, mention = shown.texts[(surface, spelling)]
    assert mention in text, f"{surface} did not show {mention!r} at all: {text[:300]}"
    case = next(c for c in spellings("echo:1", 1) if c.name == spelling)
    unescaped = text.replace("\\\\", "\\")  # JSON doubles the backslashes of 'x \\' y'
    for value in case.secrets:
        for form in (text, unescaped):
            assert value not in form, f"{surface} shows the {spelling} secret: {text[:2000]}"
    assert MARK not in text, f"{surface} shows a piece of a secret: {text[:2000]}"


def test_the_server_log_shows_no_secret(shown: Shown) -> None:
    text = "\n".join(shown.log)
    assert "replication of" in text or "destination" in text, "nothing was logged at all"
    for case in spellings("echo:1", 1):
        for value in case.secrets:
            assert value not in text, f"the log shows the {case.name} secret"
    assert MARK not in text, "the log shows a piece of a secret"


def test_masks_show_that_a_secret_is_set(shown: Shown) -> None:
    text, _ = shown.texts[("api: GET /v1/destinations/{name}", "header")]
    settings = json.loads(text)["settings"]
    assert settings["headers"] == {"Authorization": "***"} and settings["secret"] == "***"
    text, _ = shown.texts[("api: GET /v1/replication/sources/{name}", "postgres-uri")]
    assert json.loads(text)["config"]["dsn"].startswith("postgresql://app:***@127.0.0.1:")


REFUSED = secret("refused")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/replication/sources",
            {
                "kind": "mysql",
                "name": "wrong_scheme",
                "dsn": f"postgres://repl:{REFUSED}@db/shop",
                "tables": [{"name": "t"}],
            },
        ),
        (
            "/v1/replication/sources",
            {"kind": "postgres", "name": "Bad Name", "dsn": f"password={REFUSED}", "tables": []},
        ),
        (
            "/v1/destinations",
            {
                "name": "d",
                "kind": "webhook",
                "settings": {"url": f"ftp://u:{REFUSED}@h/x", "secret": REFUSED},
            },
        ),
        (
            "/v1/destinations",
            {"name": "d", "kind": "webhook", "settings": {"url": "http://h", "secret": "short"}},
        ),
        (
            "/v1/destinations",
            {
                "name": "d",
                "kind": "postgres",
                "settings": {"dsn": f"password={REFUSED}", "table": "1-bad"},
            },
        ),
    ],
)
def test_a_refused_definition_does_not_echo_its_secrets(
    kirana: RunningKirana, path: str, body: dict
) -> None:
    with kirana.client() as http:
        answer = http.post(
            path, json=body, headers={"Authorization": f"Bearer {kirana.admin_token}"}
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] and answer.json()["message"]
    assert REFUSED not in answer.text and "short" not in answer.json()["message"]


def test_the_cli_refusing_a_dsn_does_not_echo_it(tmp_path: Path) -> None:
    dsn = f"postgres://repl:{REFUSED}@db/shop"
    output = cli(tmp_path, "sources", "add-mysql", "m", "--dsn", dsn, "--table", "t")
    assert "dsn" in output and REFUSED not in output
