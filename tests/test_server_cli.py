"""`reelsync server run` and the admin CLI as real child processes: bad data dir, bad --listen,
busy port, --no-tls, the accsyn dev listener, SIGTERM/SIGINT, admin commands over HTTPS, and the
one-line errors (server down, untrusted certificate, bad key, usage)."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from reelsync.cli import cli
from support.servers import RunningServer, child_env, free_port, init_server, run_cli

pytestmark = pytest.mark.slow


def test_run_on_a_bad_data_dir(tmp_path: Path) -> None:
    done = run_cli(["server", "run", "--data-dir", str(tmp_path / "nope")], child_env(tmp_path))
    assert done.returncode == 78
    assert done.stderr.startswith(f"error: data dir {tmp_path / 'nope'} does not exist")
    assert done.stderr.count("\n") == 1


def test_run_bad_listen_and_busy_port(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_server(data, tmp_path, port=free_port())
    bad = run_cli(
        ["server", "run", "--data-dir", str(data), "--listen", "x:99999"], child_env(tmp_path)
    )
    assert bad.returncode == 78
    assert bad.stderr == "error: --listen must be HOST:PORT, got 'x:99999'\n"
    sqlite = run_cli(
        ["server", "run", "--data-dir", str(data), "--workers", "2"], child_env(tmp_path)
    )
    assert sqlite.returncode == 78
    assert sqlite.stderr.startswith(
        "error: several workers need PostgreSQL (SQLite has one writer)"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(
            ["server", "run", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
            child_env(tmp_path),
        )
    assert done.returncode == 78
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in done.stderr


def test_no_tls_and_dev_listener(server_factory: Callable[..., RunningServer]) -> None:
    dev = free_port()
    server = server_factory(tls=False, accsyn_dev_port=dev)
    assert server.url.startswith("http://")
    with server.session() as s:
        assert s.me()["email"] == server.admin
    response = httpx.get(
        f"http://127.0.0.1:{dev}/api/v1/me", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    assert response.json()["email"] == server.admin


def test_https_dev_listener_accsyn_api_and_sigint(
    server_factory: Callable[..., RunningServer],
) -> None:
    dev = free_port()
    server = server_factory(accsyn_dev_port=dev)
    assert httpx.get(f"http://127.0.0.1:{dev}/api/v1/health").json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/api/v1/health")  # self-signed: not trusted without the CA
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    for base, verify in ((f"http://127.0.0.1:{dev}", True), (server.url, ctx)):
        response = httpx.put(f"{base}/api/v3/api/login", json={}, verify=verify)
        assert response.status_code != 404
        assert "message" in response.json()  # the accsyn envelope, not FastAPI's
    assert server.stop(signal.SIGINT) == 0
    assert "received SIGINT, shutting down" in server.log()


@pytest.fixture
def cli_in_process(live_server: RunningServer) -> Callable[..., Result]:
    """The CLI run in this process (click's CliRunner) against the real server over HTTPS."""
    runner = CliRunner()
    env = live_server.env()

    def invoke(*args: str, **extra: str) -> Result:
        return runner.invoke(cli, list(args), env={**env, **extra}, catch_exceptions=False)

    return invoke


def test_admin_cli_over_https(cli_in_process: Callable[..., Result]) -> None:
    cli_ = cli_in_process
    assert cli_("site", "create", "london").exit_code == 0
    done = cli_("volume", "create", "projects", "--default",
                "--path", "hq=/mnt/projects", "--path", "london=/data/projects")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert cli_("queue", "create", "proj001", "--priority", "700").exit_code == 0
    made = cli_("user", "create", "coordinator@acmepost.com", "--role", "employee",
                "--grant", "projects:rw")  # fmt: skip
    assert made.exit_code == 0, made.stderr
    queues = json.loads(cli_("queue", "list", "--json").stdout)
    assert {q["code"]: q["priority"] for q in queues}["proj001"] == 700
    acls = json.loads(cli_("acl", "list", "--user", "coordinator@acmepost.com", "--json").stdout)
    assert [(a["read"], a["write"]) for a in acls] == [(True, True)]
    key = json.loads(cli_("user", "apikey", "create", "coordinator@acmepost.com", "--json").stdout)
    assert key["api_key"]
    assert "projects" in cli_("volume", "list").stdout
    assert cli_("site", "create", "rome").exit_code == 0
    upd = cli_(
        "volume", "update", "projects", "--path", "rome=/r/projects", "--remove-path", "london"
    )
    assert upd.exit_code == 0, upd.stderr
    paths = json.loads(cli_("volume", "show", "projects", "--json").stdout)["paths"]
    assert paths == {"hq": "/mnt/projects", "rome": "/r/projects"}
    missing = cli_("queue", "show", "nope")
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: ")
    assert missing.stderr.count("\n") == 1
    badkey = cli_("site", "list", REELSYNC_API_KEY="nope")
    assert badkey.exit_code == 77
    assert badkey.stderr.count("\n") == 1


def test_admin_cli_as_a_real_process(live_server: RunningServer) -> None:
    done = live_server.cli("queue", "create", "realproc", "--priority", "5", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["priority"] == 5
    shown = live_server.cli("queue", "show", "realproc")
    assert "realproc" in shown.stdout


def test_cli_errors_are_one_line(live_server: RunningServer) -> None:
    port = free_port()
    down = live_server.cli(
        "site", "list", REELSYNC_URL=f"https://127.0.0.1:{port}", REELSYNC_RETRY_S="0.5"
    )
    assert down.returncode == 75
    assert down.stderr == (
        f"error: cannot reach https://127.0.0.1:{port}: connection refused (the control plane is "
        "down or restarting: run the same command again once it answers)\n"
    )
    env = live_server.env()
    del env["REELSYNC_CA_FILE"]
    untrusted = run_cli(["site", "list"], env)
    assert untrusted.returncode == 78
    assert untrusted.stderr.startswith(
        f"error: cannot verify the TLS certificate of {live_server.url}"
    )
    assert untrusted.stderr.count("\n") == 1


def test_login_writes_private_credentials(live_server: RunningServer) -> None:
    env = live_server.env()
    key = env.pop("REELSYNC_API_KEY")
    done = run_cli(
        ["login", "--url", live_server.url, "--ca-file", str(live_server.ca_file)],
        env,
        input_text=key + "\n",
    )
    assert done.returncode == 0, done.stderr
    creds = live_server.home / ".config" / "reelsync" / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    for name in ("REELSYNC_URL", "REELSYNC_CA_FILE", "REELSYNC_API_USER"):
        env.pop(name, None)
    listed = run_cli(["site", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert "hq" in {s["code"] for s in json.loads(listed.stdout)}
    assert key not in done.stdout + done.stderr
    creds.chmod(0o644)
    refused = run_cli(["site", "list"], env)
    assert refused.returncode == 78
    assert "readable by others" in refused.stderr
    creds.unlink()
