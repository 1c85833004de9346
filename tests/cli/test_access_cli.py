"""Access management from the command line: sources rotated, disabled, enabled and deleted,
tokens revoked, destinations and syncs deleted, and each change in `kirana audit`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kirana.cli.admin import parse_duration
from kirana.cli.audit_log import CHANGES, READS, commands, entry
from kirana.cli.main import app
from kirana.config import load_settings
from kirana.runtime import open_store

runner = CliRunner()


def kirana(tmp_path: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_sources_rotate_disable_enable_delete(tmp_path: Path) -> None:
    old = kirana(tmp_path, "sources", "create", "web")
    new = kirana(tmp_path, "sources", "rotate-key", "web", "--overlap", "1h")
    assert new.startswith("wk_") and new != old
    listed = kirana(tmp_path, "sources", "list")
    assert old not in listed and new not in listed
    assert old[:7] in listed and new[:7] in listed and "until" in listed
    store = open_store(load_settings(tmp_path))
    try:
        assert store.source_by_write_key(old).name == "web"  # inside the overlap
        assert "disabled" in kirana(tmp_path, "sources", "disable", "web")
        assert not store.source_by_write_key(new).enabled
        assert "enabled" in kirana(tmp_path, "sources", "enable", "web")
        assert store.source_by_write_key(new).enabled
        assert "kept" in kirana(tmp_path, "sources", "delete", "web", "--yes")
        assert store.source_by_write_key(new) is None
    finally:
        store.close()
    missing = runner.invoke(app, ["sources", "delete", "web", "--yes", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no source named 'web'" in missing.output
    entries = [json.loads(line) for line in kirana(tmp_path, "audit").splitlines()]
    assert [(e["action"], e["target"]) for e in entries] == [  # not the failed delete
        ("kirana sources delete", "web"),
        ("kirana sources enable", "web"),
        ("kirana sources disable", "web"),
        ("kirana sources rotate-key", "web"),
        ("kirana sources create", "web"),
    ]
    assert all(e["actor_name"].startswith("cli:") for e in entries)
    assert entries[1]["summary"] == {"params": {"name": "web"}}
    assert entries[3]["summary"] == {"params": {"name": "web", "overlap": "1h"}}
    assert old not in json.dumps(entries) and new not in json.dumps(entries)


def test_a_bad_overlap_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    key = kirana(tmp_path, "sources", "create", "web")
    bad = runner.invoke(
        app, ["sources", "rotate-key", "web", "--overlap", "soon", "--data-dir", str(tmp_path)]
    )
    assert bad.exit_code == 1 and "--overlap" in bad.output
    store = open_store(load_settings(tmp_path))
    try:
        assert store.source_by_write_key(key).name == "web"
    finally:
        store.close()


def test_tokens_revoke(tmp_path: Path) -> None:
    secret = kirana(tmp_path, "tokens", "create", "ci", "--role", "admin")
    token_id = kirana(tmp_path, "tokens", "list").split("\t")[0]
    assert "revoked" in kirana(tmp_path, "tokens", "revoke", token_id)
    assert "revoked" in kirana(tmp_path, "tokens", "list")
    assert secret not in kirana(tmp_path, "tokens", "list")
    store = open_store(load_settings(tmp_path))
    try:
        assert store.token_by_secret(secret) is None
    finally:
        store.close()
    actions = [json.loads(line)["action"] for line in kirana(tmp_path, "audit").splitlines()]
    assert actions == ["kirana tokens revoke", "kirana tokens create"]


def test_destinations_and_syncs_delete(tmp_path: Path) -> None:
    definition = tmp_path / "crm.json"
    definition.write_text(json.dumps({"name": "crm", "kind": "profiles"}))
    kirana(tmp_path, "destinations", "create", "--file", str(definition))
    sync = tmp_path / "sync.json"
    sync.write_text(
        json.dumps(
            {
                "name": "nightly",
                "source": {"sql": "SELECT 'a' AS k"},
                "key": "k",
                "destination": "crm",
            }
        )
    )
    kirana(tmp_path, "syncs", "create", "--file", str(sync))
    kirana(tmp_path, "syncs", "delete", "nightly")
    assert "nightly" not in kirana(tmp_path, "syncs", "list")
    kirana(tmp_path, "destinations", "delete", "crm")
    assert "crm" not in kirana(tmp_path, "destinations", "list")
    log = [json.loads(line) for line in kirana(tmp_path, "audit").splitlines()]
    assert [(e["action"], e["target"]) for e in log] == [
        ("kirana destinations delete", "crm"),
        ("kirana syncs delete", "nightly"),
        ("kirana syncs create", ""),
        ("kirana destinations create", ""),
    ]
    assert log[-1]["summary"]["params"]["file"] == str(definition)


def test_every_command_is_known_to_change_or_only_read() -> None:
    """A new command must be put in CHANGES (audited) or READS: this fails until it is."""
    paths = {path for path, _ in commands(app)}
    assert paths - (CHANGES | READS) == set()
    assert not CHANGES & READS
    assert (CHANGES | READS) - paths == set()  # no stale names


def test_a_cli_erasure_entry_names_no_one_and_shows_no_token() -> None:
    params = {
        "identifiers": ["ana@example.com", "u-42"],
        "id_type": "email",
        "token": "kt_AbCdEfGhIjKlMnOpQrSt",
        "url": "http://ops:Passw0rdXyz@127.0.0.1:8000",
        "data_dir": Path("/srv/kirana"),
    }
    made = entry(("privacy", "delete"), params)
    text = json.dumps(made)
    for private in ("ana@example.com", "u-42", "kt_AbCd", "Passw0rdXyz", "/srv/kirana"):
        assert private not in text
    assert (made["action"], made["target"], made["actor_id"]) == (
        "kirana privacy delete",
        "***",
        "cli",
    )
    assert made["summary"]["params"]["id_type"] == "email"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
