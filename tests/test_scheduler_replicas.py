"""Two real ``reelsync server run`` processes on one PostgreSQL database (the second made with
``reelsync server init-replica``), real agents at hq and london spread over both, one job of a few
hundred small files: every file arrives identical, the job is done, no task is dispatched twice
(the scheduler's ``dispatches`` count and the agents' own transfer logs agree) and both processes
really dispatched. File operations reach an agent through either process. The first process runs
two workers on its port (``--workers 2``), and both answer."""

from __future__ import annotations

import hashlib
import os
import re
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.agents import RunningAgent, running_agent, wait_until
from support.postgres import fresh_database
from support.servers import RunningServer, running_replica, running_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "6", "REELSYNC_AGENT_FILEOP_TIMEOUT_S": "10"}
FILES = 300
_PUSH = re.compile(r"transfer \S+: push (\d+) file\(s\)")
_WORKER = re.compile(r"\[worker (\d)\] uvicorn\.access")


@dataclass
class Cluster:
    servers: list[RunningServer]
    agents: dict[str, RunningAgent]  # "hq@0": the hq agent polling servers[0], ...
    roots: dict[str, Path]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("replicas")
    roots = {site: tmp / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        first = stack.enter_context(  # two workers sharing its port: replicas in one
            running_server(
                tmp / "server-a", database_url=url, env=SERVER_ENV, extra_args=("--workers", "2")
            )
        )
        second = stack.enter_context(running_replica(first, tmp / "server-b", env=SERVER_ENV))
        with second.session() as admin:  # the replica serves the same workspace
            admin.create("site", {"code": "london"})
            admin.create(
                "volume",
                {"code": "projects", "default": True,
                 "paths": {site: str(root) for site, root in roots.items()}},
            )  # fmt: skip
            admin.create("queue", {"code": "proj001", "priority": 700})
            for key, value in (("transfer_batch_files", "5"), ("agent_concurrency", "2")):
                admin.request(
                    "PUT", "/settings",
                    json_body={"scope": "workspace", "key": key, "value": value},
                )  # fmt: skip
        agents = {}
        for index, server in enumerate((first, second)):
            for site in ("hq", "london"):
                name = f"{site}@{index}"
                agents[name] = stack.enter_context(
                    running_agent(server, site, tmp / f"agent-{site}-{index}")
                )
        for agent in agents.values():
            agent.wait_online()
        yield Cluster([first, second], agents, roots)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_replica_shares_the_workspace_ca_and_tickets(cluster: Cluster) -> None:
    first, second = cluster.servers
    assert first.ca_file.read_bytes() == second.ca_file.read_bytes()
    assert (first.data_dir / "tls" / "ticket.key").read_bytes() == (
        second.data_dir / "tls" / "ticket.key"
    ).read_bytes()
    assert first.url != second.url
    # agents enrolled through either process are listed by both
    for server in cluster.servers:
        with server.session() as admin:
            online = [s for s in admin.find("server") if s.get("status") == "online"]
        assert len(online) == 4, online


def test_both_workers_of_a_process_answer(cluster: Cluster) -> None:
    """The first process runs two workers on one port: new connections reach both (the jobs
    and file operations of the other tests ran through them)."""
    first = cluster.servers[0]
    ctx = ssl.create_default_context(cafile=str(first.ca_file))
    seen: set[str] = set()
    for _ in range(300):  # each a new connection; the kernel hands it to a worker
        assert httpx.get(f"{first.url}/api/v1/health", verify=ctx).status_code == 200
        seen = set(_WORKER.findall(first.log()))
        if seen == {"1", "2"}:
            break
    assert seen == {"1", "2"}, seen
    assert "2 worker processes" in first.log()


def test_file_operations_reach_an_agent_through_either_process(cluster: Cluster) -> None:
    (cluster.roots["hq"] / "probe.txt").write_text("here\n")
    for server in cluster.servers:
        with server.session() as admin:
            for site, expected in (("hq", True), ("london", False)):
                answer = admin.request(
                    "GET", "/files/exists", params={"path": "probe.txt", "site": site}
                )
                assert answer["result"] is expected, (server.url, site, answer)


def test_a_job_over_two_processes_moves_every_file_once(cluster: Cluster) -> None:
    hq, london = cluster.roots["hq"], cluster.roots["london"]
    made = []
    for i in range(FILES):
        path = hq / "proj001" / f"sh{i % 6:03d}" / f"frame.{1001 + i:04d}.exr"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(512 + (i * 37) % 3500))
        made.append(path.relative_to(hq).as_posix())
    with cluster.servers[1].session() as admin:
        job = admin.submit_job(
            {
                "name": "two processes",
                "queue": "proj001",
                "tasks": [
                    {"source": f"share=projects/{rel}", "destination": "site=london"}
                    for rel in made
                ],
            }
        )
        final = wait_until(
            lambda: (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j,
            240,
            "the job to finish",
        )
        tasks = admin.tasks(job["id"])
    logs = {name: agent.log() for name, agent in cluster.agents.items()}
    assert final["status"] == "done", (final, [t for t in tasks if t["status"] != "done"])
    assert len(tasks) == FILES
    for rel in made:
        assert _digest(london / rel) == _digest(hq / rel), rel
    assert not list(london.rglob("*.reelsync-part"))
    # no task was leased twice: the scheduler's own count ...
    assert {t["dispatches"] for t in tasks} == {1}, sorted(t["dispatches"] for t in tasks)[-5:]
    assert {t["tries"] for t in tasks} == {0}
    # ... and what the agents did: the hq agents (they dial the listening london agents) pushed
    # exactly FILES files between them, and each hq agent only ever polls its own process, so
    # work granted to both means both processes dispatched.
    pushed = {
        name: sum(int(n) for n in _PUSH.findall(text))
        for name, text in logs.items()
        if name.startswith("hq@")
    }
    assert sum(pushed.values()) == FILES, pushed
    assert all(count > 0 for count in pushed.values()), pushed
    assert not any("revoked" in text.lower() for text in logs.values())
