"""Configuration precedence: flags > environment > kirana.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from kirana.config import load_settings


def test_defaults_work_on_a_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIRANA_DATA_DIR", raising=False)
    settings = load_settings()
    assert settings.data_dir == Path("kirana-data")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_toml_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kirana.toml").write_text(
        "port = 9001\n[lake]\nlinger_seconds = 3.0\ndedupe_days = 9\n"
    )
    settings = load_settings(tmp_path)
    assert settings.port == 9001 and settings.lake.linger_seconds == 3.0
    monkeypatch.setenv("KIRANA_LAKE__LINGER_SECONDS", "2.5")
    settings = load_settings(tmp_path)
    assert settings.lake.linger_seconds == 2.5 and settings.lake.dedupe_days == 9
    assert load_settings(tmp_path, port=9100).port == 9100


def test_invalid_settings_name_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIRANA_LAKE__LINGER_SECONDS", "-1")
    with pytest.raises(ValueError, match="linger_seconds"):
        load_settings(tmp_path)
