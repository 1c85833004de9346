"""A CLI that explains itself (issue 20, item 4): kinds in --help, defaults that show,
a port in use that says how to choose another, every consumer and job in `kirana status`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.cli.syncs import _MODES, _SOURCE_KINDS
from kirana.config import load_settings
from kirana.destinations.config import KIND_SETTINGS
from kirana.eventlog.segments import FileEventLog
from kirana.runtime import Platform
from kirana.syncs.model import Mode, SyncConfig, SyncSource
from tests.cli.test_cli import LEAVES, _walk

runner = CliRunner()
KIRANA = [sys.executable, "-m", "kirana.cli.main"]
WIDE = {"COLUMNS": "400", "NO_COLOR": "1"}  # one line per help entry, nothing cut


def _help(*path: str) -> str:
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("kind", sorted(KIND_SETTINGS))
def test_destinations_create_help_lists_each_kind_with_every_setting(kind: str) -> None:
    lines = [line for line in _help("destinations", "create").splitlines() if f" {kind}: " in line]
    assert lines, f"kind {kind!r} missing from `kirana destinations create --help`"
    for name, field in KIND_SETTINGS[kind].model_fields.items():
        assert (field.alias or name) in lines[0], f"{kind}.{field.alias or name} not listed"


def test_syncs_create_help_lists_fields_source_kinds_modes_and_destination_kinds() -> None:
    text = _help("syncs", "create")
    assert set(_SOURCE_KINDS) == set(SyncSource.model_fields), "every source kind described"
    assert set(_MODES) == set(get_args(Mode)), "every mode described"
    for field in SyncConfig.model_fields:
        assert field in text
    for kind in [*(f"source.{k}:" for k in _SOURCE_KINDS), *(f"{m}:" for m in _MODES)]:
        assert kind in text
    for kind in KIND_SETTINGS:
        assert f" {kind}: " in text


@pytest.mark.parametrize("path", LEAVES, ids=lambda p: " ".join(p))
def test_every_documented_default_shows_in_help(path: list[str]) -> None:
    """Rich reads ``[default: x]`` as markup and drops it (leaving `state .`) unless escaped."""
    shown = " ".join(_help(*path).split())
    for param in _walk(path).params:  # type: ignore[attr-defined]
        written = getattr(param, "help", None) or ""
        if "[default:" in written:
            default = written[written.index("[default:") :].split("]")[0] + "]"
            assert " ".join(default.split()) in shown, f"{param.name}: {default} not shown"


def test_a_port_in_use_says_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--api-processes", "2"]):
            done = subprocess.run(
                [*KIRANA, "serve", "--port", str(port), *extra, "--data-dir", str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 1, done.stderr
            assert f"127.0.0.1:{port}" in done.stderr and "in use" in done.stderr
            assert f"--port {port + 1}" in done.stderr and f"KIRANA_PORT={port + 1}" in done.stderr
            assert "Traceback" not in done.stderr


def test_status_shows_every_consumer_and_job_that_serve_runs(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    FileEventLog(settings.log_dir).close()  # what `kirana serve` leaves behind
    platform = Platform.open(settings, role="worker")
    try:
        consumers, jobs = set(platform.consumers), set(platform.jobs)
    finally:
        platform.close()
    assert len(consumers) > 1 and jobs, "the platform runs several consumers and jobs"
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    shown_consumers = {
        line.split()[1].rstrip(":")
        for line in result.output.splitlines()
        if line.startswith("consumer ")
    }
    shown_jobs = {
        line.split()[1].rstrip(":")
        for line in result.output.splitlines()
        if line.startswith("job ")
    }
    assert shown_consumers == consumers
    assert shown_jobs == jobs


def test_status_of_a_new_data_dir_says_what_creates_the_consumers(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "none yet: `kirana serve` starts them" in result.output
