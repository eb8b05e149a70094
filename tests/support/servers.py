"""Real control plane processes for tests: ``reelsync server init`` then ``reelsync server run``
as child processes on a free port, on SQLite or PostgreSQL; stopped with SIGTERM, and the stop
must be clean (exit 0, no traceback in the log)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reelsync.client import Session
from reelsync.config import ClientConfig

__all__ = [
    "RunningServer",
    "child_env",
    "free_port",
    "init_server",
    "reelsync_cmd",
    "run_cli",
    "running_replica",
    "running_server",
    "start_server_process",
    "stop_process",
]

START_TIMEOUT_S = 30.0


def stop_process(
    process: subprocess.Popen[bytes], sig: int, timeout: float, what: str, log: Callable[[], str]
) -> int:
    """Send ``sig`` to a child still running and wait for it; its exit code. A child that ignores
    the signal is killed and fails the test with its log."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{what} ignored signal {sig}:\n{log()}") from None
    return process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reelsync_cmd(*args: str) -> list[str]:
    """The ``reelsync`` command of this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "reelsync", *args]


def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELSYNC_", "ACCSYN_"))}
    env["HOME"] = str(home)
    env.pop("XDG_CONFIG_HOME", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], env: dict[str, str], *, timeout: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``reelsync ARGS`` as a child process; returns its exit code, stdout and stderr."""
    return subprocess.run(
        reelsync_cmd(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )


@dataclass
class RunningServer:
    """A live control plane. ``api_key`` is the admin's; ``ca_file`` the workspace CA."""

    url: str
    api_key: str
    admin: str
    workspace: str
    data_dir: Path
    ca_file: Path
    database_url: str
    home: Path
    process: subprocess.Popen[bytes]
    log_file: Path
    tls: bool = True
    accsyn_dev_port: int | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client_config(self, **changes: object) -> ClientConfig:
        config = ClientConfig(
            url=self.url,
            api_user=self.admin,
            api_key=self.api_key,
            ca_file=self.ca_file if self.tls else None,
        )
        return config.with_overrides(**changes)

    def session(self, **changes: object) -> Session:
        """A Session as the admin (close it, or use ``with``)."""
        return Session(self.client_config(**changes))

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a ``reelsync`` child process talking to this server as the admin."""
        base = {
            "REELSYNC_URL": self.url,
            "REELSYNC_API_USER": self.admin,
            "REELSYNC_API_KEY": self.api_key,
        }
        if self.tls:
            base["REELSYNC_CA_FILE"] = str(self.ca_file)
        return child_env(self.home, {**base, **extra})

    def cli(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run ``reelsync ARGS`` against this server as the admin."""
        return run_cli(args, self.env(**extra_env))

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait; returns the exit code."""
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        return stop_process(self.process, sig, timeout, "server", self.log)


def init_server(
    data_dir: Path,
    home: Path,
    *,
    port: int,
    database_url: str | None = None,
    workspace: str = "acme",
    admin: str = "admin@acme.test",
) -> dict[str, str]:
    """Run ``reelsync server init --json`` and return its JSON."""
    args = [
        "server", "init", "--json", "--data-dir", str(data_dir), "--workspace", workspace,
        "--admin", admin, "--listen", f"127.0.0.1:{port}",
    ]  # fmt: skip
    if database_url:
        args += ["--database-url", database_url]
    done = run_cli(args, child_env(home))
    if done.returncode != 0:
        raise AssertionError(f"server init failed ({done.returncode}): {done.stderr}")
    result: dict[str, str] = json.loads(done.stdout)
    return result


def wait_healthy(server: RunningServer, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context(cafile=str(server.ca_file)) if server.tls else False
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            response = httpx.get(f"{server.url}/api/v1/health", verify=ctx, timeout=2)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not healthy after {timeout}s:\n{server.log()}")


@contextmanager
def running_server(
    base: Path,
    *,
    database_url: str | None = None,
    tls: bool = True,
    accsyn_dev_port: int | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    check_clean_exit: bool = True,
) -> Iterator[RunningServer]:
    """Init and run a control plane under ``base`` (a fresh directory); SIGTERM it afterwards and
    (with ``check_clean_exit``) assert it exited 0 without a traceback."""
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    data_dir = base / "data"
    port = free_port()
    info = init_server(data_dir, home, port=port, database_url=database_url)
    args = ["server", "run", "--data-dir", str(data_dir), *extra_args]
    if not tls:
        args.append("--no-tls")
    if accsyn_dev_port is not None:
        args += ["--accsyn-dev-port", str(accsyn_dev_port)]
    log_file = base / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            reelsync_cmd(*args),
            env=child_env(home, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    scheme = "https" if tls else "http"
    server = RunningServer(
        url=f"{scheme}://127.0.0.1:{port}",
        api_key=info["api_key"],
        admin=info["admin"],
        workspace=info["workspace"],
        data_dir=data_dir,
        ca_file=Path(info["ca_file"]),
        database_url=database_url or f"sqlite:///{data_dir / 'reelsync.db'}",
        home=home,
        process=process,
        log_file=log_file,
        tls=tls,
        accsyn_dev_port=accsyn_dev_port,
    )
    try:
        wait_healthy(server)
        yield server
    finally:
        code = server.stop()
    if check_clean_exit:
        log_text = server.log()
        assert code == 0, f"server exited {code} on SIGTERM:\n{log_text}"
        assert "Traceback" not in log_text, log_text


def start_server_process(server: RunningServer, env: dict[str, str] | None = None) -> None:
    """(Re)start ``reelsync server run`` on ``server``'s data dir (after a stop or a kill),
    appending to its log; waits until it is healthy."""
    with server.log_file.open("ab") as log:
        server.process = subprocess.Popen(
            reelsync_cmd("server", "run", "--data-dir", str(server.data_dir)),
            env=child_env(server.home, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server._stopped = False
    wait_healthy(server)


@contextmanager
def running_replica(
    first: RunningServer,
    base: Path,
    *,
    env: dict[str, str] | None = None,
    check_clean_exit: bool = True,
) -> Iterator[RunningServer]:
    """A second control plane process on ``first``'s (PostgreSQL) database, as an operator makes
    one: ``reelsync server init-replica --from FIRST_DATA_DIR`` then ``server run`` on a port of
    its own. Same admin key, workspace and CA; SIGTERM afterwards (clean exit checked)."""
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    data_dir = base / "data"
    port = free_port()
    done = run_cli(
        ["server", "init-replica", "--from", str(first.data_dir), "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{port}", "--json"],
        child_env(home),
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"server init-replica failed ({done.returncode}): {done.stderr}")
    info = json.loads(done.stdout)
    replica = RunningServer(
        url=info["url"],
        api_key=first.api_key,
        admin=first.admin,
        workspace=first.workspace,
        data_dir=data_dir,
        ca_file=Path(info["ca_file"]),
        database_url=first.database_url,
        home=home,
        process=first.process,  # replaced below
        log_file=base / "server.log",
        tls=first.tls,
    )
    replica._stopped = True
    try:
        start_server_process(replica, env)
        yield replica
    finally:
        code = replica.stop()
    if check_clean_exit:
        log_text = replica.log()
        assert code == 0, f"replica exited {code} on SIGTERM:\n{log_text}"
        assert "Traceback" not in log_text, log_text
