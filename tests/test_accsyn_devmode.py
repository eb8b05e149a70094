"""The client's dev mode (AS_DEV=1: plain HTTP to 127.0.0.1:8181, from the environment or a .env
file) and ACCSYN_PROXY, against ``reelsync server run --accsyn-dev-port 8181``. Port 8181 is
shared by every helper's tests: hold the harness's lock while it is bound."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from accsyn_api.session import AccsynException, Session

from accsyn_harness import DEV_PORT, dev_port_lock, live_workspace

_KEYS = (
    "AS_DEV",
    "ACCSYN_PROXY",
    "ACCSYN_WORKSPACE",
    "ACCSYN_API_USER",
    "ACCSYN_API_KEY",
    "ACCSYN_DEV",
)


@pytest.fixture
def clean_environ() -> Iterator[None]:
    saved = dict(os.environ)
    for key in _KEYS:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _forget(*keys: str) -> None:
    for key in keys:
        os.environ.pop(key, None)


def test_dev_mode_and_proxy(tmp_path: Path, clean_environ: None) -> None:
    with dev_port_lock(), live_workspace("sqlite", tmp_path, accsyn_dev_port=DEV_PORT) as ws:
        # AS_DEV=1 in the environment: no hostname, no port; plain HTTP to 127.0.0.1:8181.
        os.environ["AS_DEV"] = "1"
        session = Session(
            workspace=ws.code,
            username=ws.admin.email,
            api_key=ws.admin.api_key,
            path_envfile=str(tmp_path / "none.env"),
        )
        assert session._role == "admin"
        queue = session.create("job", {"type": 2, "code": "proj001"})
        assert queue["code"] == "proj001"
        _forget(*_KEYS)

        # Everything from a .env file: the script itself unchanged.
        envfile = tmp_path / ".env"
        envfile.write_text(
            f"# reelsync\nAS_DEV=1\nACCSYN_WORKSPACE={ws.code}\n"
            f"ACCSYN_API_USER={ws.admin.email}\nACCSYN_API_KEY='{ws.admin.api_key}'\n"
        )
        session = Session(path_envfile=str(envfile))
        assert session.find_one("Queue WHERE code=proj001")["id"] == queue["id"]
        _forget(*_KEYS)

        # A wrong key over the dev listener: the same clear message.
        os.environ["AS_DEV"] = "1"
        with pytest.raises(AccsynException, match="invalid or expired API key"):
            Session(
                workspace=ws.code,
                username=ws.admin.email,
                api_key="rsk_" + "0" * 64,
                path_envfile=str(tmp_path / "none.env"),
            )
        _forget(*_KEYS)

        # ACCSYN_PROXY: all calls, the workspace lookup too, go to reelsync over plain HTTP.
        os.environ["ACCSYN_PROXY"] = f"127.0.0.1:{DEV_PORT}"
        session = Session(
            workspace=ws.code,
            username=ws.admin.email,
            api_key=ws.admin.api_key,
            path_envfile=str(tmp_path / "none.env"),
        )
        assert session.find_one("Queue WHERE code=medium")["default"] is True
