"""``[transfer] fsync`` in agent.toml and ``REELSYNC_AGENT_FSYNC``: durable by default, off only
when told, the environment over the file; ``[transfer] direct_io`` and
``REELSYNC_AGENT_DIRECT_IO`` likewise; and every ``REELSYNC_AGENT_*`` override left empty counts
as unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelsync.agent.settings import AgentFiles, load_agent_settings, write_agent_config
from reelsync.errors import ConfigError


def _enrolled(data_dir: Path) -> Path:
    data_dir.mkdir()
    return write_agent_config(
        data_dir,
        server_url="https://cp.example:8443",
        server_id="a1",
        site="hq",
        workspace="",
        secret="s3cret",
        listen="127.0.0.1:0",
        advertise=None,
        dialable=True,
        bandwidth_limit_mib_s=None,
    )


def test_fsync_is_on_unless_the_file_or_the_environment_turns_it_off(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    config = _enrolled(data_dir)
    assert config == AgentFiles(data_dir).config
    assert load_agent_settings(data_dir, {}).fsync is True
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_FSYNC": "0"}).fsync is False
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_FSYNC": "false"}).fsync is False
    # an empty variable (``REELSYNC_AGENT_FSYNC=`` in a unit file) is not a request to turn it off
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_FSYNC": ""}).fsync is True
    text = config.read_text().replace("[transfer]\n", "[transfer]\nfsync = false\n", 1)
    config.write_text(text)
    assert load_agent_settings(data_dir, {}).fsync is False
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_FSYNC": "1"}).fsync is True


def test_direct_io_is_auto_unless_the_file_or_the_environment_says(tmp_path: Path) -> None:
    data_dir = tmp_path / "agent"
    config = _enrolled(data_dir)
    assert load_agent_settings(data_dir, {}).direct_io == "auto"
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_DIRECT_IO": "OFF"}).direct_io == "off"
    for value, expected in (('"on"', "on"), ("false", "off"), ("true", "on")):
        text = config.read_text()
        config.write_text(text.replace("[transfer]\n", f"[transfer]\ndirect_io = {value}\n", 1))
        assert load_agent_settings(data_dir, {}).direct_io == expected
        config.write_text(text)
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_DIRECT_IO": "on"}).direct_io == "on"
    with pytest.raises(ConfigError, match="transfer.direct_io must be one of auto, on, off"):
        load_agent_settings(data_dir, {"REELSYNC_AGENT_DIRECT_IO": "maybe"})


def test_an_empty_variable_counts_as_unset_for_every_override(tmp_path: Path) -> None:
    """``REELSYNC_AGENT_*=`` (empty, as a unit file or a shell leaves it) is not a value: the
    file's setting stands, for every environment override alike (an empty DIALABLE made an agent
    undialable, an empty BANDWIDTH_LIMIT dropped the file's limit)."""
    data_dir = tmp_path / "agent"
    config = _enrolled(data_dir)
    text = config.read_text().replace("[transfer]\n", "[transfer]\nbandwidth_limit_mib_s = 12\n")
    config.write_text(text)
    names = (
        "REELSYNC_AGENT_LISTEN", "REELSYNC_AGENT_BANDWIDTH_LIMIT", "REELSYNC_AGENT_DIALABLE",
        "REELSYNC_AGENT_REPORT_KEEPALIVE_S", "REELSYNC_AGENT_SERVER_URL",
        "REELSYNC_AGENT_ADVERTISE", "REELSYNC_AGENT_FSYNC", "REELSYNC_LOG_LEVEL",
        "REELSYNC_AGENT_DIRECT_IO",
    )  # fmt: skip
    from_file = load_agent_settings(data_dir, {})
    assert from_file.dialable is True
    assert from_file.bandwidth_limit == 12 * (1 << 20)
    assert load_agent_settings(data_dir, dict.fromkeys(names, "")) == from_file
    assert load_agent_settings(data_dir, {"REELSYNC_AGENT_DIALABLE": "0"}).dialable is False
