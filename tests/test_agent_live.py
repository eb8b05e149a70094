"""Agents as real processes against a real control plane (``reelsync server run``): enrollment
(token reuse and expiry refused), heartbeats and the agent list, a job whose file really moves
from the hq agent to the london agent, an agent killed and marked offline, a peer with another
workspace's certificate refused, file operations relayed through an agent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from dataplane_pki import Workspace
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.engine import Assignment, Engine, EngineSettings, FileSpec, PeerAddress, VolumePath
from reelsync.fs import Volume
from support.agents import RunningAgent, enroll_agent, make_token, running_agent, wait_until
from support.servers import RunningServer

pytestmark = pytest.mark.slow

SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "2", "REELSYNC_AGENT_FILEOP_TIMEOUT_S": "10"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def studio(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> Iterator[dict[str, object]]:
    """A control plane with sites hq and london, volume ``projects`` rooted in a tmp dir per
    site, and one running agent per site."""
    server = server_factory(env=SERVER_ENV)
    roots = {site: tmp_path / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    with server.session() as admin:
        admin.create("site", {"code": "london"})
        admin.create(
            "volume",
            {
                "code": "projects",
                "default": True,
                "paths": {site: str(root) for site, root in roots.items()},
            },
        )
    with ExitStack() as stack:
        agents = {
            site: stack.enter_context(running_agent(server, site, tmp_path / f"agent-{site}"))
            for site in ("hq", "london")
        }
        for agent in agents.values():
            agent.wait_online()
        yield {"server": server, "roots": roots, "agents": agents}


def test_agents_enroll_beat_and_are_listed(studio: dict) -> None:
    server: RunningServer = studio["server"]
    agents: dict[str, RunningAgent] = studio["agents"]
    listed = json.loads(server.cli("agent", "list", "--json").stdout)
    assert sorted((a["site"], a["status"], tuple(a["volumes"])) for a in listed) == [
        ("hq", "online", ("projects",)),
        ("london", "online", ("projects",)),
    ]
    assert all(a["last_checkin"] and a["peer_port"] and a["dialable"] for a in listed)
    human = server.cli("agent", "list")
    assert human.returncode == 0 and "london" in human.stdout and "online" in human.stdout
    data_dir = agents["london"].data_dir
    for name in ("agent.key", "agent.secret", "agent.toml"):
        assert (data_dir / name).stat().st_mode & 0o077 == 0, name
    # an enrolled data dir is not enrolled twice
    again = enroll_agent(server, data_dir, make_token(server, "london"))
    assert again.returncode != 0 and "already holds an enrolled agent" in again.stderr


def test_a_job_moves_a_file_from_hq_to_london(studio: dict) -> None:
    server: RunningServer = studio["server"]
    hq, london = studio["roots"]["hq"], studio["roots"]["london"]
    (hq / "proj" / "sh010").mkdir(parents=True)
    big = hq / "proj" / "sh010" / "plate.0001.exr"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    small = hq / "proj" / "sh010" / "notes.txt"
    small.write_text("take 3 is the one\n")
    with server.session() as admin:
        job = admin.submit_job(
            {
                "name": "to london",
                "source": "site=hq",
                "destination": "site=london",
                "tasks": [
                    {"source": "volume=projects/proj/sh010/plate.0001.exr"},
                    {"source": "volume=projects/proj/sh010/notes.txt",
                     "destination": "site=london:volume=projects/in/notes.txt"},
                ],  # fmt: skip
            }
        )

        def finished() -> dict | None:
            current = admin.get_entity("job", job["id"])
            return current if current["status"] in ("done", "failed") else None

        final = wait_until(finished, 60, "the job to finish")
        tasks = admin.tasks(job["id"])
    assert final["status"] == "done", (final, tasks, studio["agents"]["hq"].log())
    assert _digest(london / "proj" / "sh010" / "plate.0001.exr") == _digest(big)
    assert (london / "in" / "notes.txt").read_text() == "take 3 is the one\n"
    assert not list(london.rglob("*.reelsync-part"))


def test_a_killed_agent_is_marked_offline(studio: dict) -> None:
    agent: RunningAgent = studio["agents"]["london"]
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(10)
    agent._stopped = True
    entry = agent.wait_status("offline", timeout=20)
    assert entry["status"] == "offline"


def test_enrollment_tokens_are_single_use_and_expire(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory()
    token = make_token(server, "hq")
    first = enroll_agent(server, tmp_path / "a1", token)
    assert first.returncode == 0, first.stderr
    reused = enroll_agent(server, tmp_path / "a2", token)
    assert reused.returncode == 4 or reused.returncode != 0
    assert "invalid, used or expired enrollment token" in reused.stderr
    assert "Traceback" not in reused.stderr
    assert not (tmp_path / "a2").exists()  # nothing written
    expiring = make_token(server, "hq")
    db = Database(server.database_url)
    try:
        with db.session() as s:
            s.execute(
                update(m.EnrollmentToken)
                .where(m.EnrollmentToken.used_at.is_(None))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        db.dispose()
    expired = enroll_agent(server, tmp_path / "a3", expiring)
    assert expired.returncode != 0 and "expired" in expired.stderr
    bad = enroll_agent(server, tmp_path / "a4", "rse_not-a-token")
    assert bad.returncode != 0 and "enrollment token" in bad.stderr
    unknown_site = server.cli("agent", "token", "--site", "mars")
    assert unknown_site.returncode != 0 and "no site 'mars'" in unknown_site.stderr


def test_a_peer_from_another_workspace_is_refused(studio: dict, tmp_path: Path) -> None:
    agents: dict[str, RunningAgent] = studio["agents"]
    entry = agents["london"].entry()
    assert entry is not None
    foreign = Workspace(tmp_path / "foreign", code="acme").agent(entry["id"], "hq")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.bin").write_bytes(b"intruder")

    async def push() -> list:
        engine = Engine(
            EngineSettings(streams=1, retry_deadline=1, connect_timeout=5),
            client_ssl=foreign.client(),
            volumes={"projects": Volume("projects", tmp_path / "src")},
        )
        try:
            spec = FileSpec("k", VolumePath("projects", "x.bin"), VolumePath("projects", "x.bin"))
            job = Assignment("t", PeerAddress("127.0.0.1", entry["peer_port"]), (spec,), "v1.a.b")
            return await engine.push(job)
        finally:
            await engine.aclose()

    results = asyncio.run(push())
    assert results[0].status == "failed"
    assert results[0].error_code in ("authentication", "connection_lost"), results[0]
    assert not (studio["roots"]["london"] / "x.bin").exists()
