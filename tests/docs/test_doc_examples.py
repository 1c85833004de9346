"""Every documented example works as written (issue 20, item 2).

The shell and JSON examples of README.md and docs/*.md run against ONE Kirana, started once
for the module with demo data (``kirana serve --demo``). The test substitutes placeholders
only: ``$WRITE_KEY``, ``$TOKEN`` and ``$USER_ID`` are environment variables of the shell,
``127.0.0.1:8000`` becomes the test server's address, the data dir comes from
``KIRANA_DATA_DIR``, and the documented ids ``tok_0123456789abcdef`` and ``RUN_ID`` become
real ones (a revocable token; the demo's buy_again run).

Shell blocks run in bash with ``set -e``: every command must succeed. ``curl`` is wrapped to
print the HTTP status after the body, so every request must answer below 400 unless the
block documents the answer (``# 422 {...}`` under it), in which case status and body are
compared. JSON blocks must parse; those marked as request bodies must be accepted by the
API. Blocks marked ``<!-- doc-test: skip (reason) -->`` are reported as skipped with their
reason (``-ra``), so nothing is left out silently.

Documents run in a fixed order, docs/*.md then README.md, because they share one server:
``docs/access.md`` creates and deletes ``ios-app`` before the README creates it again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.docs.blocks import (
    SHELL_LANGUAGES,
    Block,
    documents,
    expected_answers,
    json_values,
    parse_blocks,
)
from tests.e2e.test_crash import Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_ADDRESS = "127.0.0.1:8000"
DOCUMENTED_TOKEN_ID = "tok_0123456789abcdef"
DEMO_USERS = "40"
_STATUS_LINE = re.compile(r"^@@status (\d{3})$", re.MULTILINE)


def _all_blocks() -> list[Block]:
    ordered = [*documents(ROOT)[1:], documents(ROOT)[0]]  # docs/*.md, then README.md
    return [b for doc in ordered for b in parse_blocks(str(doc.relative_to(ROOT)), doc.read_text())]


BLOCKS = _all_blocks()
SHELL_BLOCKS = [b for b in BLOCKS if b.language in SHELL_LANGUAGES]
JSON_BLOCKS = [b for b in BLOCKS if b.language == "json"]


@dataclass
class DocumentedKirana:
    server: Server
    data_dir: Path
    write_key: str
    token: str
    revocable_token_id: str
    user_id: str
    run_id: str  # the demo's buy_again run, for RUN_ID (an earlier run once a block runs it)

    def shell_env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "KIRANA_DATA_DIR": str(self.data_dir),
            "WRITE_KEY": self.write_key,
            "TOKEN": self.token,
            "USER_ID": self.user_id,
            "NO_COLOR": "1",
            "COLUMNS": "120",
        }

    def substitute(self, text: str) -> str:
        address = f"127.0.0.1:{self.server.port}"
        return (
            text.replace(DOCUMENTED_ADDRESS, address)
            .replace(DOCUMENTED_TOKEN_ID, self.revocable_token_id)
            .replace("RUN_ID", self.run_id)
        )


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentedKirana]:
    data_dir = tmp_path_factory.mktemp("doc-examples") / "data"
    server = Server(data_dir, extra=["--demo", "--demo-users", DEMO_USERS])
    try:
        _wait_for_demo(server)
        write_key = _cli(data_dir, "sources", "create", "doc-examples")
        token = _cli(data_dir, "tokens", "create", "doc-examples", "--role", "admin")
        _cli(data_dir, "tokens", "create", "doc-examples-revoked", "--role", "viewer")
        revocable = [
            line.split("\t")[0]
            for line in _cli(data_dir, "tokens", "list").splitlines()
            if "\tdoc-examples-revoked\t" in line
        ]
        user_id = _cli(
            data_dir, "sql", "SELECT min(user_id) FROM model_buy_again", "--format", "csv"
        ).splitlines()[-1]
        runs = json.loads(_cli(data_dir, "jobs", "runs", "--job", "buy_again", "--format", "json"))
        yield DocumentedKirana(
            server, data_dir, write_key, token, revocable[0], user_id, runs[0]["run_id"]
        )
    finally:
        server.stop()


def _wait_for_demo(server: Server) -> None:
    deadline = time.monotonic() + 600
    while "next, try:" not in server.output.read_text():
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the demo did not finish: {server.output.read_text()}")
        time.sleep(0.5)


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kirana.cli.main", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kirana {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


# The harness's only additions to a block: stop at the first failing command, and have curl
# report the status of each answer after its body.
_PRELUDE = """set -eo pipefail
curl() { command curl -sS -w '\\n@@status %{http_code}\\n' "$@"; }
"""


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_shell_example_runs_as_written(block: Block, documented: DocumentedKirana) -> None:
    if block.skip_reason:
        pytest.skip(f"{block.id}: {block.skip_reason}")
    script = _PRELUDE + documented.substitute(block.text)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=documented.shell_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"
    answers = _curl_answers(done.stdout)
    expected = {a.curl_index: a for a in expected_answers(block.text)}
    for index, (status, body) in enumerate(answers):
        if index in expected:
            assert status == expected[index].status, f"{block.id} curl #{index + 1}: {body}"
            assert _contains(json.loads(body), expected[index].body), (
                f"{block.id} curl #{index + 1} answered {body}, the doc shows "
                f"{expected[index].body}"
            )
        else:
            assert status < 400, f"{block.id} curl #{index + 1} answered {status}: {body}"


def _curl_answers(stdout: str) -> list[tuple[int, str]]:
    """(status, body) of each curl in a block's output, in order."""
    answers, start = [], 0
    for found in _STATUS_LINE.finditer(stdout):
        body = stdout[start : found.start()].strip().split("\n")[-1]
        answers.append((int(found[1]), body))
        start = found.end()
    return answers


def _contains(actual: object, documented: object) -> bool:
    """True when every key and value the doc shows is in the answer (more keys allowed)."""
    if isinstance(documented, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in documented.items()
        )
    if isinstance(documented, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(documented)
            and all(_contains(a, d) for a, d in zip(actual, documented, strict=True))
        )
    return actual == documented


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[b.id for b in JSON_BLOCKS])
def test_json_example_parses_and_requests_are_accepted(
    block: Block, documented: DocumentedKirana
) -> None:
    if block.skip_reason:
        pytest.skip(f"{block.id}: {block.skip_reason}")
    values = json_values(block.text)
    assert values, f"{block.id} holds no JSON"
    if block.request is None:
        return
    method, template = block.request
    headers = (
        {"X-Write-Key": documented.write_key}
        if block.with_write_key
        else {"Authorization": f"Bearer {documented.token}"}
    )
    with httpx.Client(base_url=documented.server.url, headers=headers, timeout=120) as client:
        for value in values:
            path = template.format_map(value) if isinstance(value, dict) else template
            answer = client.request(method, path, json=value)
            assert answer.status_code < 400, (
                f"{block.id}: {method} {path} answered {answer.status_code}: {answer.text}"
            )


def test_the_demo_experiment_reports_a_result_on_first_run(documented: DocumentedKirana) -> None:
    """Issue 20, item 3: `kirana experiments report home-ranking` right after the demo shows
    users in both variations and a lift per metric, not "no exposures yet"."""
    report = json.loads(
        _cli(documented.data_dir, "experiments", "report", "home-ranking", "--format", "json")
    )
    users = {v["key"]: v["users"] for v in report["variations"]}
    assert set(users) == {"bandit", "popular"} and all(users.values()), users
    # every demo user, plus those the examples above assigned (u1 of docs/experiments.md)
    assert sum(users.values()) >= int(DEMO_USERS)
    for metric in report["metrics"]:
        [treatment] = metric["result"]["variations"][1:]
        assert "relative" in treatment, f"{metric['key']} has no result"
