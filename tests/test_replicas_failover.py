"""Replicas checked independently, with real processes on PostgreSQL: two ``reelsync server run``
processes (cp2 made with ``server init-replica``); the hq agent and one london agent know both
(``--server cp2,cp1``: they poll cp2 first), the other london agent only cp1; the london agents
share one root. ``reelsync sync`` works through either process (its path checks are file
operations relayed to whichever process the hq agent polls); then cp2 is SIGKILLed in the middle
of a job: the agents polling it fail over to cp1 within seconds, the job is done, every file is
identical and no file was dispatched twice."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.agents import RunningAgent, make_token, start_agent, wait_until
from support.postgres import fresh_database
from support.servers import RunningServer, run_cli, running_replica, running_server
from sync_world import OPERATOR, World, build_world, make_tree

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

_PUSH = re.compile(r"transfer \S+: push (\d+) file\(s\)")
_NEVER_GOT = re.compile(r"never got the work answer of (\d+) task")


@dataclass
class Cluster:
    cp1: RunningServer
    cp2: RunningServer
    world: World
    agents: dict[str, RunningAgent]

    def root(self, site: str) -> Path:
        return self.world.volume_root(site)

    def sync(self, server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
        return server.cli(
            "sync", *args, REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=self.world.operator_key
        )


def _agent(
    stack: ExitStack, cp1: RunningServer, site: str, data_dir: Path, servers: str, *extra: str
) -> RunningAgent:
    """An agent enrolled with ``--server SERVERS`` (one URL, or several comma-separated)."""
    args = [
        "agent", "enroll", "--server", servers, "--ca-file", str(cp1.ca_file),
        "--token", make_token(cp1, site), "--data-dir", str(data_dir),
        "--listen", "127.0.0.1:0", "--hostname", data_dir.name, "--json", *extra,
    ]  # fmt: skip
    done = run_cli(args, cp1.env())
    assert done.returncode == 0, done.stderr
    process, log_file = start_agent(cp1, data_dir)
    agent = RunningAgent(
        cp1, json.loads(done.stdout)["server_id"], site, data_dir, process, log_file
    )
    stack.callback(agent.stop)
    return agent


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        cp1 = stack.enter_context(running_server(tmp_path / "cp1", database_url=url))
        cp2 = stack.enter_context(running_replica(cp1, tmp_path / "cp2", check_clean_exit=False))
        with cp1.session() as admin:
            world = build_world(admin, tmp_path / "studio")
            admin.request(
                "PUT", "/settings",
                json_body={"scope": "workspace", "key": "transfer_batch_files", "value": "8"},
            )  # fmt: skip
        both = f"{cp2.url},{cp1.url}"
        agents = {
            "hq": _agent(stack, cp1, "hq", tmp_path / "hq", both, "--bandwidth-limit", "8"),
            "london1": _agent(stack, cp1, "london", tmp_path / "ldn1", cp1.url),
            "london2": _agent(stack, cp1, "london", tmp_path / "ldn2", both),
        }
        for agent in agents.values():
            agent.wait_online()
        yield Cluster(cp1, cp2, world, agents)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(cluster: Cluster, shot: str) -> int:
    hq, london = cluster.root("hq") / shot, cluster.root("london") / shot
    files = [p for p in hq.rglob("*") if p.is_file()]
    for path in files:
        assert _digest(london / path.relative_to(hq)) == _digest(path), path
    return len(files)


def test_sync_through_either_process_and_a_replica_killed_mid_job(cluster: Cluster) -> None:
    # the hq agent polls cp2: a sync through cp1 relays its path checks across processes
    for index, server in enumerate((cluster.cp1, cluster.cp2)):
        shot = f"proj001/sc0010/sh00{index}0"
        make_tree(cluster.root("hq"), shot, frames=6, size=20_000)
        started = time.monotonic()
        done = cluster.sync(
            server, "--site", "london", f"{shot}/scans", "--wait", "--timeout", "120"
        )
        assert done.returncode == 0, (server.url, done.stderr)
        assert time.monotonic() - started < 60
        assert _same(cluster, shot) == 7

    hq = cluster.agents["hq"]
    pushed_before = sum(int(n) for n in _PUSH.findall(hq.log()))
    # a job big enough to be mid-way when cp2 dies (the hq agent sends at 8 MiB/s)
    shot = "proj001/sc0020/sh0010"
    made = make_tree(cluster.root("hq"), shot, frames=120, size=256 * 1024)
    rels = [p.relative_to(cluster.root("hq")).as_posix() for p in made]
    with cluster.cp1.session() as admin:
        job = admin.submit_job(
            {
                "name": "failover",
                "queue": "proj001",
                "tasks": [
                    {"source": f"share=projects/{rel}", "destination": "site=london"}
                    for rel in rels
                ],
            }
        )
    with cluster.cp1.session() as admin:
        wait_until(
            lambda: admin.get_entity("job", job["id"])["status"] == "running", 60, "the job to run"
        )
    cluster.cp2.stop(signal.SIGKILL, timeout=10)
    killed = time.monotonic()
    wait_until(
        lambda: f"unreachable: using {cluster.cp1.url}" in hq.log(), 30, "hq to fail over to cp1"
    )
    failed_over = time.monotonic() - killed
    with cluster.cp1.session() as admin:
        final = wait_until(
            lambda: (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j,
            120,
            "the job to finish",
        )
        tasks = admin.tasks(job["id"])
        listed = {s["hostname"]: s["status"] for s in admin.find("server")}
    assert failed_over < 15, failed_over
    assert final["status"] == "done", (final, tasks)
    assert _same(cluster, shot) == 121
    # a lease cp2 made just before its death, whose answer never left, goes back at the agent's
    # next poll (cp1 logs it) and is leased again: the only second dispatch there may be
    regranted = sum(int(n) for n in _NEVER_GOT.findall(cluster.cp1.log()))
    assert sum(t["dispatches"] - 1 for t in tasks) == regranted, tasks
    assert {t["dispatches"] for t in tasks} <= {1, 2}, tasks
    assert {t["tries"] for t in tasks} == {0}, tasks
    assert listed == {"hq": "online", "ldn1": "online", "ldn2": "online"}, listed
    assert not list(cluster.root("london").rglob("*.reelsync-part"))
    assert "revoked" not in hq.log()
    pushed = sum(int(n) for n in _PUSH.findall(hq.log())) - pushed_before
    assert pushed == len(rels)  # each file of the job granted once
