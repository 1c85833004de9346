"""The `kirana` command: help everywhere, --data-dir everywhere, sql formats."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from kirana.cli.main import app
from kirana.eventlog.records import event_record
from kirana.eventlog.segments import FileEventLog
from kirana.lake.loader import LakeLoader

runner = CliRunner()


def _is_group(command: object) -> bool:
    """Typer vendors click, so test for sub-commands rather than a click class."""
    return isinstance(getattr(command, "commands", None), dict)


def all_commands() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        paths.append(prefix)
        if _is_group(command):
            for name, sub in command.commands.items():  # type: ignore[attr-defined]
                walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


COMMANDS = all_commands()


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "kirana")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _walk(path: list[str]) -> object:
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


LEAVES = [p for p in COMMANDS if p and not _is_group(_walk(p))]


@pytest.mark.parametrize("path", LEAVES, ids=lambda p: " ".join(p))
def test_every_leaf_command_takes_data_dir(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert "--data-dir" in result.output


def test_sources_and_tokens(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    created = runner.invoke(app, ["sources", "create", "web", *data])
    assert created.exit_code == 0 and created.output.strip().startswith("wk_")
    again = runner.invoke(app, ["sources", "create", "web", *data])
    assert again.exit_code == 1 and "already exists" in again.output
    listed = runner.invoke(app, ["sources", "list", *data])
    assert "web" in listed.output
    token = runner.invoke(app, ["tokens", "create", "ci", "--role", "admin", *data])
    assert token.exit_code == 0 and token.output.strip().startswith("kt_")
    bad = runner.invoke(app, ["tokens", "create", "ci", "--role", "root", *data])
    assert bad.exit_code == 1 and "role must be one of" in bad.output


def test_data_dir_from_environment(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sources", "create", "env"], env={"KIRANA_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0
    assert (tmp_path / "state" / "kirana.sqlite").exists()


def load_lake(tmp_path: Path) -> None:
    with FileEventLog(tmp_path / "log") as log:
        loader = LakeLoader(log, tmp_path / "lake", tmp_path / "state")
        log.append_sync(
            [
                event_record(
                    {
                        "type": "track",
                        "event": name,
                        "messageId": f"m{i}",
                        "userId": "u",
                        "timestamp": "2026-11-01T00:00:00Z",
                        "receivedAt": "2026-11-01T00:00:00Z",
                    }
                )
                for i, name in enumerate(["A", "B", "B"])
            ]
        )
        result = log.read(0)
        loader.handle(result.records, result.next_offset)
        loader.close()


def test_sql_prints_table_csv_and_json(tmp_path: Path) -> None:
    load_lake(tmp_path)
    query = "SELECT event, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    data = ["--data-dir", str(tmp_path)]
    as_json = runner.invoke(app, ["sql", query, "--format", "json", *data])
    assert [json.loads(line) for line in as_json.output.splitlines()] == [
        {"event": "A", "n": 1},
        {"event": "B", "n": 2},
    ]
    as_csv = runner.invoke(app, ["sql", query, "--format", "csv", *data])
    assert as_csv.output.splitlines() == ["event,n", "A,1", "B,2"]
    as_table = runner.invoke(app, ["sql", query, *data])
    assert "event" in as_table.output and "B" in as_table.output


def test_sql_error_names_the_lake_tables(tmp_path: Path) -> None:
    load_lake(tmp_path)
    result = runner.invoke(app, ["sql", "SELECT * FROM nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "lake tables: events" in result.output


_EMPTY_DATA_DIR = tempfile.mkdtemp(prefix="kirana-sql-")


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s.strip() == s and s.strip())
)
def test_sql_table_prints_values_verbatim(text: str) -> None:
    """Values are data, never markup: `[ab]`, `[bold]x[/]`, `:smile:` print as they are."""
    data_dir = _EMPTY_DATA_DIR
    literal = text.replace("'", "''")
    result = runner.invoke(
        app,
        ["sql", f"SELECT '{literal}' AS v, '[' || '{literal}' || ']' AS w", "--max-rows", "5"],
        env={"COLUMNS": "400", "KIRANA_DATA_DIR": data_dir},
    )
    assert result.exit_code == 0, result.output
    assert text in result.output
    assert f"[{text}]" in result.output
