"""``kirana content``: import, list, show, update, delete, with errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kirana.cli.main import app
from tests.serving.helpers import item

runner = CliRunner()


def run(data: Path, *args: str):
    return runner.invoke(app, [*args, "--data-dir", str(data)])


def test_content_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bundle = tmp_path / "content.json"
    bundle.write_text(
        json.dumps(
            {
                "widgets": [{"key": "hero", "kind": "banner", "items": [item("b1")]}],
                "placements": [{"key": "home_feed", "widgets": ["hero"]}],
            }
        )
    )
    result = run(data, "content", "import", str(bundle))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"created": 3, "updated": 0, "unchanged": 0}
    listed = json.loads(run(data, "content", "placements", "list").output)
    assert [p["key"] for p in listed] == ["home_feed"]

    new_item = tmp_path / "item.json"
    new_item.write_text(json.dumps(item("b2", tags=["department:produce"])))
    assert run(data, "content", "items", "create", "hero", "-f", str(new_item)).exit_code == 0
    shown = json.loads(run(data, "content", "widgets", "show", "hero").output)
    assert [i["key"] for i in shown["items"]] == ["b1", "b2"]

    new_item.write_text(json.dumps(item("b2", title="Changed")))
    updated = run(data, "content", "items", "update", "hero", "b2", "-f", str(new_item))
    assert json.loads(updated.output)["version"] == 2

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"key": "cart", "widgets": ["missing"]}))
    result = run(data, "content", "placements", "create", "-f", str(bad))
    assert result.exit_code == 1
    assert "widgets[0].widget: no widget 'missing'" in result.output

    result = run(data, "content", "widgets", "delete", "hero")
    assert result.exit_code == 1 and "used by placement(s) home_feed" in result.output
    assert run(data, "content", "placements", "delete", "home_feed").exit_code == 0
    assert run(data, "content", "widgets", "delete", "hero").exit_code == 0
    stats = run(data, "content", "placements", "stats", "home_feed")
    assert stats.exit_code == 1 and "kirana content placements list" in stats.output
