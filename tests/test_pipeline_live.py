"""The pipeline from submit to the last byte with real processes (``reelsync server run`` and two
``reelsync agent run``): many small leases in a row move every file once and intact, a re-sync
of an unchanged folder moves nothing, and a higher-priority job goes past a full agent at once
and ends while the low one still runs."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reelsync.client import Session
from support.agents import (
    RunningAgent,
    add_london_and_projects,
    agents_at_hq_and_london,
    wait_until,
)
from support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow


@dataclass
class Pair:
    server: RunningServer
    roots: dict[str, Path]
    agents: dict[str, RunningAgent]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pair]:
    """One server and two agents for the module's tests (each works in a folder of its own and
    puts back what it changes); a test parametrising it (agent options) gets its own."""
    limit: list[str] = getattr(request, "param", [])
    tmp_path = tmp_path_factory.mktemp("pair")
    roots = {site: tmp_path / site / "projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir(parents=True)
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp_path / "server"))
        add_london_and_projects(server, roots)
        agents = agents_at_hq_and_london(stack, server, tmp_path, london_extra=limit)
        yield Pair(server, roots, agents)


def _files(root: Path, count: int, size: int, seed: str) -> list[str]:
    made = []
    for i in range(count):
        rel = f"{seed}/sh{i // 50:03d}/f{i:05d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(f"{seed}{i}".encode()).digest()
        path.write_bytes((block * (size // len(block) + 1))[: size + i % 97])
        made.append(rel)
    return made


def _wait_ended(admin: Session, job_id: str, what: str) -> dict[str, Any]:
    """Wait while the job makes progress (no fixed deadline: 60 s without any change fails)."""
    last: tuple[Any, ...] = ()
    moved = time.monotonic()
    while True:
        job: dict[str, Any] = admin.get_entity("job", job_id)
        if job["status"] in ("done", "failed", "aborted"):
            return job
        state = (job["status"], job["bytes_done"], job["progress"])
        if state != last:
            last, moved = state, time.monotonic()
        assert time.monotonic() - moved < 60, f"{what} stuck: {job}"
        time.sleep(0.1)


def _tasks(admin: Session, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.tasks(job_id, limit=1000)
    return found


def test_many_leases_move_every_file_once_and_intact(pair: Pair) -> None:
    hq, london = pair.roots["hq"], pair.roots["london"]
    rels = _files(hq, 900, 3000, "many")
    logged = len(pair.agents["hq"].log())  # the agents may have served another test before
    with pair.server.session() as admin:
        # small leases: the pipeline is what moves these files, lease after lease
        admin.request(
            "PUT",
            "/settings",
            json_body={"scope": "workspace", "key": "transfer_batch_files", "value": 40},
        )
        try:
            job = admin.submit_job(
                {"destination": "site=london", "tasks": [f"share=projects/{r}" for r in rels]}
            )
            final = _wait_ended(admin, job["id"], "the 900-file job")
        finally:
            admin.request(
                "DELETE", "/settings", params={"scope": "workspace", "key": "transfer_batch_files"}
            )
        assert final["status"] == "done", final
        assert final["progress"] == 100
        tasks = _tasks(admin, job["id"])
    assert len(tasks) == 900
    assert {t["status"] for t in tasks} == {"done"}
    assert [t for t in tasks if t["dispatches"] != 1] == []  # none leased (sent) twice
    for rel in rels:
        assert (london / rel).read_bytes() == (hq / rel).read_bytes(), rel
    log = pair.agents["hq"].log()[logged:]
    transfers = log.count(": push ")
    assert transfers >= 900 // 40, log[-2000:]  # it really went in many leases
    sent = sum(int(n) for n in _numbers(log, " file(s) done"))
    assert sent == 900  # each file in exactly one transfer


def _numbers(log: str, suffix: str) -> list[str]:
    """From lines like 'transfer X: 40/40 file(s) done': the done counts."""
    out = []
    for line in log.splitlines():
        if line.endswith(suffix):
            out.append(line.rsplit(" ", 3)[-3].split("/")[0])
    return out


def test_sync_twice_moves_nothing_the_second_time(pair: Pair) -> None:
    hq, london = pair.roots["hq"], pair.roots["london"]
    rels = _files(hq / "proj001", 300, 2000, "sc0010")
    first = pair.server.cli("sync", "--site", "london", "proj001/sc0010", "--wait", "--json")
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    size = sum((hq / "proj001" / r).stat().st_size for r in rels)
    assert body["jobs"][0]["size"] == size  # counted at the source agent, known at submit
    assert body["jobs"][0]["job"]["size"] == size
    for rel in rels:
        assert (london / "proj001" / rel).read_bytes() == (hq / "proj001" / rel).read_bytes()
    stamps = {r: (london / "proj001" / r).stat().st_mtime_ns for r in rels}
    inodes = {r: (london / "proj001" / r).stat().st_ino for r in rels}

    again = pair.server.cli("sync", "--site", "london", "proj001/sc0010", "--wait", "--json")
    assert again.returncode == 0, again.stderr
    body = json.loads(again.stdout)
    assert body["jobs"][0]["action"] == "revived"
    assert body["final"][0]["status"] == "done"
    # nothing was written again: the same files (inode and mtime) are in place
    assert {r: (london / "proj001" / r).stat().st_ino for r in rels} == inodes
    assert {r: (london / "proj001" / r).stat().st_mtime_ns for r in rels} == stamps
    with pair.server.session() as admin:
        (task,) = _tasks(admin, body["jobs"][0]["job"]["id"])  # the day's job records the path once
    assert task["source_path"] == "proj001/sc0010"
    assert task["dispatches"] == 2  # once per sync


@pytest.mark.parametrize("pair", [["--bandwidth-limit", "2"]], indirect=True)
def test_a_higher_priority_job_passes_a_full_agent_at_once(pair: Pair) -> None:
    hq, london = pair.roots["hq"], pair.roots["london"]
    low_rels = _files(hq, 120, 128 * 1024, "low")  # ~15 MiB at 2 MiB/s: several seconds
    high_rels = _files(hq, 3, 20_000, "high")
    with pair.server.session() as admin:
        admin.create("queue", {"code": "bulk", "priority": 1})
        admin.create("queue", {"code": "rush", "priority": 999})
        for key, value in (("transfer_batch_files", 10), ("agent_concurrency", 4)):
            admin.request(
                "PUT", "/settings", json_body={"scope": "workspace", "key": key, "value": value}
            )
        low = admin.submit_job(
            {
                "queue": "bulk",
                "destination": "site=london",
                "tasks": [f"share=projects/{r}" for r in low_rels],
            }
        )
        # every slot of the hq agent busy with the low job
        wait_until(
            lambda: (
                sum(1 for t in _tasks(admin, low["id"]) if t["status"] in ("booting", "executing"))
                >= 40
            ),
            60,
            "the low job to fill the agent",
        )
        high = admin.submit_job(
            {
                "queue": "rush",
                "destination": "site=london",
                "tasks": [f"share=projects/{r}" for r in high_rels],
            }
        )
        high_done = _wait_ended(admin, high["id"], "the high job")
        low_now = admin.get_entity("job", low["id"])
        assert high_done["status"] == "done", high_done
        # it went past the full agent: the low job was still far from done
        assert low_now["status"] == "running", low_now
        assert low_now["progress"] < 80, low_now
        high_tasks = _tasks(admin, high["id"])
        low_final = _wait_ended(admin, low["id"], "the low job")
        assert low_final["status"] == "done", low_final
    assert [t["dispatches"] for t in high_tasks] == [1, 1, 1]
    for rel in high_rels + low_rels:
        assert (london / rel).read_bytes() == (hq / rel).read_bytes(), rel
