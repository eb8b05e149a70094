"""The client's dev mode (AS_DEV=1: plain HTTP to 127.0.0.1:8181, from the environment or a .env
file) and ACCSYN_PROXY, against a real server. Port 8181 is shared: hold the harness's lock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from accsyn_api.session import Session

from accsyn_harness import (
    DEV_PORT,
    WORKSPACE,
    database_url,
    dev_port_lock,
    init_workspace,
    run_server,
)

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

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


def test_dev_mode_and_proxy(tmp_path: Path, clean_environ: None) -> None:
    with database_url("sqlite", tmp_path) as url:
        ws = init_workspace(url, tmp_path)
        with dev_port_lock(), run_server(ws, port=DEV_PORT, tls=False):
            # AS_DEV=1 in the environment: no hostname, no port.
            os.environ["AS_DEV"] = "1"
            session = Session(
                workspace=WORKSPACE,
                username=ws.admin.email,
                api_key=ws.admin.api_key,
                path_envfile=str(tmp_path / "none.env"),
            )
            assert session._role == "admin"
            queue = session.create("job", {"type": 2, "code": "proj001"})
            assert queue["code"] == "proj001"
            del os.environ["AS_DEV"]

            # Everything from a .env file, the script unchanged.
            envfile = tmp_path / ".env"
            envfile.write_text(
                f"AS_DEV=1\nACCSYN_WORKSPACE={WORKSPACE}\nACCSYN_API_USER={ws.admin.email}\n"
                f"ACCSYN_API_KEY='{ws.admin.api_key}'\n"
            )
            session = Session(path_envfile=str(envfile))
            assert session.find_one("Queue WHERE code=proj001")["id"] == queue["id"]
            for key in _KEYS:
                os.environ.pop(key, None)

            # ACCSYN_PROXY: the workspace lookup is answered by reelsync too.
            os.environ["ACCSYN_PROXY"] = f"127.0.0.1:{DEV_PORT}"
            session = Session(
                workspace=WORKSPACE,
                username=ws.admin.email,
                api_key=ws.admin.api_key,
                path_envfile=str(tmp_path / "none.env"),
            )
            assert session.find_one("Queue WHERE code=medium")["default"] is True
        ws.db.dispose()
