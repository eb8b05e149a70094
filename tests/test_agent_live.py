"""Agents as real processes against a real control plane (``reelsync server run``): enrollment
(token reuse and expiry refused), heartbeats and the agent list, a job whose file really moves
from the hq agent to the london agent, an agent killed and marked offline, a peer with another
workspace's certificate refused, file operations relayed through an agent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from accsyn_api.session import AccsynException
from accsyn_api.session import Session as AccsynSession
from sqlalchemy import update

from dataplane_pki import Workspace
from reelsync.client import Session
from reelsync.db import Database
from reelsync.db import models as m
from reelsync.engine import Assignment, Engine, EngineSettings, FileSpec, PeerAddress, VolumePath
from reelsync.errors import AuthenticationError
from reelsync.fs import Volume
from support.agents import (
    RunningAgent,
    add_london_and_projects,
    agents_at_hq_and_london,
    enroll_agent,
    make_token,
    wait_until,
)
from support.servers import (
    RunningServer,
    child_env,
    reelsync_cmd,
    running_server,
    wait_healthy,
)

pytestmark = pytest.mark.slow

SERVER_ENV = {"REELSYNC_AGENT_OFFLINE_AFTER_S": "2", "REELSYNC_AGENT_FILEOP_TIMEOUT_S": "10"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_job(admin: Session, job_id: str, timeout: float = 60) -> dict:
    def finished() -> dict | None:
        current: dict = admin.get_entity("job", job_id)
        return current if current["status"] in ("done", "failed") else None

    found: dict = wait_until(finished, timeout, f"job {job_id} to finish")
    return found


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A control plane with sites hq and london, volume ``projects`` rooted in a tmp dir per
    site, and one running agent per site (shared by this module's tests; the test that kills an
    agent runs last)."""
    tmp = tmp_path_factory.mktemp("agents")
    roots = {site: tmp / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp / "server", env=SERVER_ENV))
        add_london_and_projects(server, roots)
        agents = agents_at_hq_and_london(stack, server, tmp)
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
    assert human.returncode == 0
    assert "london" in human.stdout
    assert "online" in human.stdout
    data_dir = agents["london"].data_dir
    for name in ("agent.key", "agent.secret", "agent.toml"):
        assert (data_dir / name).stat().st_mode & 0o077 == 0, name
    # an enrolled data dir is not enrolled twice
    again = enroll_agent(server, data_dir, make_token(server, "london"))
    assert again.returncode != 0
    assert "already holds an enrolled agent" in again.stderr


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
                    {
                        "source": "volume=projects/proj/sh010/notes.txt",
                        "destination": "site=london:volume=projects/in/notes.txt",
                    },
                ],  # fmt: skip
            }
        )
        final = _wait_job(admin, job["id"])
        tasks = admin.tasks(job["id"])
    assert final["status"] == "done", (final, tasks, studio["agents"]["hq"].log())
    assert _digest(london / "proj" / "sh010" / "plate.0001.exr") == _digest(big)
    assert (london / "in" / "notes.txt").read_text() == "take 3 is the one\n"
    assert not list(london.rglob("*.reelsync-part"))


def test_enrollment_tokens_are_single_use_and_expire(studio: dict, tmp_path: Path) -> None:
    server: RunningServer = studio["server"]
    token = make_token(server, "hq")
    first = enroll_agent(server, tmp_path / "a1", token)
    assert first.returncode == 0, first.stderr
    reused = enroll_agent(server, tmp_path / "a2", token)
    assert reused.returncode == AuthenticationError.exit_code
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
    assert expired.returncode != 0
    assert "expired" in expired.stderr
    bad = enroll_agent(server, tmp_path / "a4", "rse_not-a-token")
    assert bad.returncode != 0
    assert "enrollment token" in bad.stderr
    unknown_site = server.cli("agent", "token", "--site", "mars")
    assert unknown_site.returncode != 0
    assert "no site 'mars'" in unknown_site.stderr


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
    assert results[0].error_code == "unauthenticated", results[0]
    assert "CERTIFICATE_VERIFY_FAILED" in (results[0].error_message or "")
    assert not (studio["roots"]["london"] / "x.bin").exists()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_accsyn_file_calls_are_answered_by_the_agent(studio: dict, tmp_path: Path) -> None:
    server: RunningServer = studio["server"]
    hq, london = studio["roots"]["hq"], studio["roots"]["london"]
    (hq / "browse" / "sub").mkdir(parents=True)
    (hq / "browse" / "a.txt").write_text("12345")
    (hq / "browse" / "sub" / "b.exr").write_bytes(b"x" * 10)
    (london / "remote.txt").write_text("at london")
    saved = {
        k: os.environ.pop(k) for k in ("AS_DEV", "ACCSYN_PROXY", "ACCSYN_DEV") if k in os.environ
    }
    try:
        session = AccsynSession(
            workspace=server.workspace,
            username=server.admin,
            api_key=server.api_key,
            hostname="127.0.0.1",
            port=server.port,
            path_envfile=str(tmp_path / "no.env"),
        )
        listing = session.ls("share=projects/browse", recursive=True, getsize=True)
        by_name = {item["filename"]: item for item in listing}
        assert by_name["a.txt"]["type"] == 1
        assert by_name["a.txt"]["size"] == 5
        assert by_name["sub"]["type"] == 0
        assert by_name["sub"]["size"] == 10
        assert [f["filename"] for f in by_name["sub"]["files"]] == ["b.exr"]
        assert session.exists("share=projects/browse/a.txt") is True
        assert session.exists("share=projects/browse/zz.txt") is False
        assert session.getsize("share=projects/browse") == 15
        assert session.mkdir("share=projects/browse/new/deeper")
        assert (hq / "browse" / "new" / "deeper").is_dir()
        assert session.rename("share=projects/browse/a.txt", "share=projects/browse/c.txt")
        assert (hq / "browse" / "c.txt").read_text() == "12345"
        assert session.delete("share=projects/browse/new", force=True)
        assert not (hq / "browse" / "new").exists()
        # the london agent answers for site=london
        remote = session.ls("site=london:share=projects")
        assert "remote.txt" in {item["filename"] for item in remote}
        with pytest.raises(AccsynException, match="does not exist"):
            session.getsize("share=projects/browse/missing.bin")
    finally:
        os.environ.update(saved)


def test_agents_reconnect_after_the_control_plane_restarts(studio: dict) -> None:
    server: RunningServer = studio["server"]
    agents: dict[str, RunningAgent] = studio["agents"]
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 8  # open long-polls do not hold the stop
    time.sleep(1.0)
    assert all(agent.process.poll() is None for agent in agents.values())
    with server.log_file.open("ab") as log:
        server.process = subprocess.Popen(
            reelsync_cmd("server", "run", "--data-dir", str(server.data_dir)),
            env=child_env(server.home, SERVER_ENV),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server._stopped = False
    wait_healthy(server)
    for agent in agents.values():
        agent.wait_online()
    assert "retrying" in agents["london"].log()
    hq, london = studio["roots"]["hq"], studio["roots"]["london"]
    (hq / "after-restart.bin").write_bytes(os.urandom(100_000))
    with server.session() as admin:
        job = admin.submit_job(
            {"source": "volume=projects/after-restart.bin", "destination": "site=london"}
        )
        final = wait_until(
            lambda: (j := admin.get_entity("job", job["id"]))["status"] in ("done", "failed") and j,
            60,
            "the job after the restart",
        )
    assert final["status"] == "done"
    assert _digest(london / "after-restart.bin") == _digest(hq / "after-restart.bin")


def test_a_killed_agent_is_marked_offline(studio: dict) -> None:
    agent: RunningAgent = studio["agents"]["london"]
    agent.kill()
    entry = agent.wait_status("offline", timeout=20)
    assert entry["status"] == "offline"
