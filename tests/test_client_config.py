"""Where the client's settings come from, and the credentials file's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelsync.config import ClientConfig, credentials_path, load_client_config
from reelsync.errors import ConfigError


def _creds(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / ".config" / "reelsync" / "credentials"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_defaults_without_anything(tmp_path: Path) -> None:
    config = load_client_config({"HOME": str(tmp_path)})
    assert config == ClientConfig(url="https://127.0.0.1:8443")


def test_precedence_arguments_env_accsyn_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    _creds(
        tmp_path, f'url = "https://file:1"\napi_user = "f@x"\napi_key = "kf"\nca_file = "{ca}"\n'
    )
    env = {"HOME": str(tmp_path)}
    assert load_client_config(env).url == "https://file:1"
    assert load_client_config(env).ca_file == ca
    env |= {"ACCSYN_API_USER": "acc@x", "ACCSYN_API_KEY": "ka", "ACCSYN_WORKSPACE": "acme"}
    config = load_client_config(env)
    assert (config.api_user, config.api_key, config.workspace) == ("acc@x", "ka", "acme")
    env |= {"REELSYNC_URL": "http://env:2/", "REELSYNC_API_USER": "e@x", "REELSYNC_API_KEY": "ke"}
    config = load_client_config(env)
    assert (config.url, config.api_user, config.api_key) == ("http://env:2", "e@x", "ke")
    config = load_client_config(env, url="https://arg:3", api_key="karg")
    assert (config.url, config.api_key) == ("https://arg:3", "karg")


def test_key_is_not_in_repr(tmp_path: Path) -> None:
    config = load_client_config({"HOME": str(tmp_path)}, api_key="sekrit-key")
    assert "sekrit" not in repr(config)


def test_credentials_file_must_be_private(tmp_path: Path) -> None:
    _creds(tmp_path, 'api_key = "k"\n', mode=0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600"):
        load_client_config({"HOME": str(tmp_path)})


def test_broken_credentials_file(tmp_path: Path) -> None:
    _creds(tmp_path, "api_key = \n")
    with pytest.raises(ConfigError, match="cannot read credentials file"):
        load_client_config({"HOME": str(tmp_path)})


def test_credentials_path_follows_xdg(tmp_path: Path) -> None:
    assert credentials_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/reelsync/credentials")
    assert credentials_path({"HOME": "/h"}) == Path("/h/.config/reelsync/credentials")


def test_bad_url_and_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must start with"):
        load_client_config({"HOME": str(tmp_path)}, url="ftp://x")
    with pytest.raises(ConfigError, match="does not exist"):
        load_client_config({"HOME": str(tmp_path)}, ca_file=tmp_path / "nope.crt")


def test_insecure_is_explicit(tmp_path: Path) -> None:
    assert load_client_config({"HOME": str(tmp_path)}).verify
    assert not load_client_config({"HOME": str(tmp_path)}, insecure=True).verify
