"""The examples in docs/configuration.md's JetStream section are true."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kirana.config import load_settings
from kirana.eventlog.jetstream import server_urls
from tests.eventlog.nats_server import nats_server_binary

SECTION = (
    (Path(__file__).parents[2] / "docs" / "configuration.md")
    .read_text()
    .split("## The event log on NATS JetStream", 1)[1]
    .split("\n## ", 1)[0]
)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.S)


def test_the_cluster_example_configures_three_replicas_on_three_servers(tmp_path: Path) -> None:
    (example,) = blocks("toml")
    data = tmp_path / "data"
    data.mkdir()
    (data / "kirana.toml").write_text(example)
    log = load_settings(data).log
    assert log.backend == "nats" and log.nats_replicas == 3
    assert len(server_urls(log.nats_url)) == 3


def test_the_single_server_config_is_valid_for_nats_server(tmp_path: Path) -> None:
    (config,) = blocks("conf")
    assert "sync_interval: always" in config
    path = tmp_path / "nats.conf"
    path.write_text(config)
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
