"""Real agents against a real control plane: two agents at hq serving the same volume share one
job's work, and when one of them dies (SIGKILL) mid-transfer the control plane marks it offline,
its leases go back to the queue and the other hq agent moves those files: the job is done and
every file is identical."""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from reelsync.client import Session
from support.agents import RunningAgent, add_london_and_projects, running_agent, wait_until
from support.servers import RunningServer

pytestmark = pytest.mark.slow

FILES = 48
FILE_SIZE = 256 * 1024
_PUSH = re.compile(r"transfer \S+: push (\d+) file\(s\)")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kill_holding_leases(agent: RunningAgent, admin: Session, job_id: str) -> list[str]:
    """SIGKILL ``agent`` at a moment it holds leases of ``job_id``; its in-flight task ids (it
    can take no more). The agent is frozen (SIGSTOP) while its leases are read, so it can neither
    finish nor take work between the read and the kill; frozen between two transfers, it is
    thawed and tried again at its next push (on a loaded machine it can be between transfers)."""
    for _ in range(50):
        os.kill(agent.process.pid, signal.SIGSTOP)
        in_flight = [
            t["id"]
            for t in admin.tasks(job_id)
            if t["server_id"] == agent.server_id and t["status"] in ("booting", "executing")
        ]
        if in_flight:
            agent.kill()
            return in_flight
        pushes = len(_PUSH.findall(agent.log()))
        os.kill(agent.process.pid, signal.SIGCONT)
        wait_until(lambda: len(_PUSH.findall(agent.log())) > pushes, 60, "the agent's next push")
    raise AssertionError("the hq agent never held a lease when frozen")


def test_a_dead_agents_files_go_to_the_other_agent_at_its_site(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server: RunningServer = server_factory(env={"REELSYNC_AGENT_OFFLINE_AFTER_S": "3"})
    roots = {site: tmp_path / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    add_london_and_projects(server, roots)
    with server.session() as admin:
        for key, value in (("transfer_batch_files", "4"), ("agent_concurrency", "2")):
            admin.request(
                "PUT", "/settings", json_body={"scope": "workspace", "key": key, "value": value}
            )
    slow = ["--bandwidth-limit", "2"]  # MiB/s: each 4-file transfer takes about half a second
    with (
        running_agent(server, "hq", tmp_path / "hq1", enroll_extra=slow) as hq1,
        running_agent(server, "hq", tmp_path / "hq2", enroll_extra=slow) as hq2,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        for agent in (hq1, hq2, london):
            agent.wait_online()
        made = []
        for i in range(FILES):
            path = roots["hq"] / "shot" / f"frame.{1001 + i:04d}.exr"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(FILE_SIZE))
            made.append(path.relative_to(roots["hq"]).as_posix())
        with server.session() as admin:
            job = admin.submit_job(
                {
                    "name": "two senders",
                    "tasks": [
                        {"source": f"share=projects/{rel}", "destination": "site=london"}
                        for rel in made
                    ],
                }
            )
            # both hq agents are pushing, and most of the job is still to move
            wait_until(
                lambda: _PUSH.search(hq1.log()) and _PUSH.search(hq2.log()),
                60,
                "both hq agents to be sending",
            )
            in_flight = _kill_holding_leases(hq1, admin, job["id"])
            hq1.wait_status("offline", timeout=30)
            final = wait_until(
                lambda: (
                    (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j
                ),
                120,
                "the job to finish",
            )
            tasks = {t["id"]: t for t in admin.tasks(job["id"])}
    assert final["status"] == "done", final
    for rel in made:
        assert _digest(roots["london"] / rel) == _digest(roots["hq"] / rel), rel
    assert not list(roots["london"].rglob("*.reelsync-part"))
    # what the dead agent held was leased again (the count stays on the task when it is done),
    # and hq1 was dead by then, so hq2 -- the only hq agent left -- moved those files
    assert {tasks[t]["dispatches"] for t in in_flight} == {2}, [tasks[t] for t in in_flight]
    assert {t["dispatches"] for t in tasks.values()} <= {1, 2}
    pushed_by_hq2 = sum(int(n) for n in _PUSH.findall(hq2.log()))
    assert pushed_by_hq2 >= len(in_flight) + 1, (pushed_by_hq2, len(in_flight))
