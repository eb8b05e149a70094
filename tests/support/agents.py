"""Real agent processes for tests: ``reelsync agent token`` (admin), ``reelsync agent enroll``
and ``reelsync agent run`` as child processes against a :class:`RunningServer`; stopped with
SIGTERM, and the stop must be clean (exit 0, no traceback in the log).

    with running_agent(server, "london", tmp_path / "london") as agent:
        agent.wait_online()
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelsync.errors import NotFoundError
from support.servers import RunningServer, reelsync_cmd, run_cli, stop_process

__all__ = [
    "RunningAgent",
    "add_london_and_projects",
    "agents_at_hq_and_london",
    "enroll_agent",
    "make_token",
    "running_agent",
    "wait_until",
]


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate()`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def add_london_and_projects(
    server: RunningServer, roots: Mapping[str, Path], *, default: bool = True
) -> None:
    """The site ``london`` and the volume ``projects`` (the default one unless told otherwise)
    rooted at ``roots[site]``."""
    volume: dict[str, Any] = {"code": "projects", "paths": {s: str(r) for s, r in roots.items()}}
    if default:
        volume["default"] = True
    with server.session() as admin:
        admin.create("site", {"code": "london"})
        admin.create("volume", volume)


def make_token(server: RunningServer, site: str, ttl: int = 600) -> str:
    done = server.cli("agent", "token", "--site", site, "--ttl", str(ttl), "--json")
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token


def enroll_agent(
    server: RunningServer,
    data_dir: Path,
    token: str,
    *,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``reelsync agent enroll`` (peers on 127.0.0.1, any free port); the completed process."""
    args = [
        "agent", "enroll", "--server", server.url, "--ca-file", str(server.ca_file),
        "--token", token, "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
        "--hostname", data_dir.name, "--json", *extra,
    ]  # fmt: skip
    return run_cli(args, server.env())


@dataclass
class RunningAgent:
    server: RunningServer
    server_id: str
    site: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_file: Path
    _stopped: bool = field(default=False, repr=False)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def entry(self) -> dict[str, Any] | None:
        """This agent as ``GET /api/v1/servers/{id}`` shows it (None if it is gone)."""
        with self.server.session() as admin:
            try:
                found: dict[str, Any] = admin.request("GET", f"/servers/{self.server_id}")
            except NotFoundError:
                return None
        return found

    def wait_status(self, status: str, timeout: float = 30.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if status == "online" and self.process.poll() is not None:
                raise AssertionError(f"agent exited {self.process.returncode}:\n{self.log()}")
            entry = self.entry()
            return entry if entry and entry["status"] == status else None

        found: dict[str, Any] = wait_until(check, timeout, f"agent {self.site} {status}")
        return found

    def wait_online(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_status("online", timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would (the clean-exit check is skipped for this agent)."""
        self._stopped = True
        self.process.kill()
        self.process.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        return stop_process(self.process, sig, timeout, "agent", self.log)


def start_agent(
    server: RunningServer, data_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """``reelsync agent run`` as a child; its log is DATA_DIR's sibling ``<name>-agent.log``."""
    log_file = data_dir.parent / f"{data_dir.name}-agent.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            reelsync_cmd("agent", "run", "--data-dir", str(data_dir)),
            env=server.env(**(env or {})),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, log_file


@contextmanager
def running_agent(
    server: RunningServer,
    site: str,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    check_clean_exit: bool = True,
    enroll_extra: Sequence[str] = (),
) -> Iterator[RunningAgent]:
    """Enroll an agent for ``site`` into ``data_dir`` (``enroll_extra``: more ``agent enroll``
    options, e.g. ``--bandwidth-limit``) and run it; SIGTERM it afterwards."""
    done = enroll_agent(server, data_dir, make_token(server, site), extra=enroll_extra)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    process, log_file = start_agent(server, data_dir, env)
    agent = RunningAgent(server, info["server_id"], site, data_dir, process, log_file)
    try:
        yield agent
    finally:
        killed = agent._stopped
        code = agent.stop()
    if check_clean_exit and not killed:
        text = agent.log()
        assert code == 0, f"agent exited {code} on SIGTERM:\n{text}"
        assert "Traceback" not in text, text


def agents_at_hq_and_london(
    stack: ExitStack,
    server: RunningServer,
    base: Path,
    *,
    london_extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> dict[str, RunningAgent]:
    """One running agent per site (``hq``, ``london``; data dirs ``base/agent-<site>``), both
    online; stopped when ``stack`` closes. ``london_extra``: more ``agent enroll`` options;
    ``env``: more environment for both agents."""
    agents = {
        site: stack.enter_context(
            running_agent(
                server,
                site,
                base / f"agent-{site}",
                env=env,
                enroll_extra=london_extra if site == "london" else (),
            )
        )
        for site in ("hq", "london")
    }
    for agent in agents.values():
        agent.wait_online()
    return agents
