"""A site behind NAT: its agent cannot be dialled (``dialable = false``), yet it both receives
pushes from hq and sends its work back, because the hq agent listens and the london agent dials
out (real ``reelsync server run`` and ``reelsync agent run`` processes, files really moving)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from reelsync.client import Session
from support.agents import RunningAgent, add_london_and_projects, running_agent, wait_until
from support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_job(admin: Session, source: str, destination: str, paths: list[str]) -> dict[str, Any]:
    job = admin.submit_job(
        {
            "name": f"{source} to {destination}",
            "destination": f"site={destination}",
            "tasks": [{"source": f"site={source}:volume=projects/{p}"} for p in paths],
        }
    )

    def finished() -> dict[str, Any] | None:
        current: dict[str, Any] = admin.get_entity("job", job["id"])
        return current if current["status"] in ("done", "failed") else None

    final: dict[str, Any] = wait_until(finished, 90, f"job {job['id']} to finish")
    final["tasks"] = admin.tasks(job["id"])
    return final


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("nat")
    roots = {site: tmp / f"{site}-projects" for site in ("hq", "london")}
    for root in roots.values():
        root.mkdir()
    with ExitStack() as stack:
        server = stack.enter_context(running_server(tmp / "server"))
        add_london_and_projects(server, roots)
        hq = stack.enter_context(running_agent(server, "hq", tmp / "agent-hq"))
        london = stack.enter_context(
            running_agent(
                server, "london", tmp / "agent-london", env={"REELSYNC_AGENT_DIALABLE": "false"}
            )
        )
        hq.wait_online()
        london.wait_online()
        yield {"server": server, "roots": roots, "hq": hq, "london": london}


def test_the_natted_agent_is_listed_as_not_dialable(studio: dict[str, Any]) -> None:
    london: RunningAgent = studio["london"]
    hq: RunningAgent = studio["hq"]
    assert london.wait_online()["dialable"] is False
    assert hq.wait_online()["dialable"] is True


def test_push_to_and_pull_from_a_site_behind_nat(studio: dict[str, Any]) -> None:
    server: RunningServer = studio["server"]
    hq_root: Path = studio["roots"]["hq"]
    london_root: Path = studio["roots"]["london"]
    plates = hq_root / "proj001" / "sh0010" / "plates"
    plates.mkdir(parents=True)
    for i in range(3):
        (plates / f"plate.{i:04d}.exr").write_bytes(os.urandom(2 * 1024 * 1024 + i))
    comp = london_root / "proj001" / "sh0010" / "comp"
    comp.mkdir(parents=True)
    (comp / "comp_v001.nk").write_bytes(os.urandom(40_000))
    (comp / "render.0001.exr").write_bytes(os.urandom(5 * 1024 * 1024 + 3))

    with server.session() as admin:
        pushed = _run_job(
            admin, "hq", "london", [f"proj001/sh0010/plates/plate.{i:04d}.exr" for i in range(3)]
        )
        pulled = _run_job(
            admin,
            "london",
            "hq",
            ["proj001/sh0010/comp/comp_v001.nk", "proj001/sh0010/comp/render.0001.exr"],
        )

    assert pushed["status"] == "done", (pushed, studio["london"].log())
    assert pulled["status"] == "done", (pulled, studio["london"].log())
    for i in range(3):
        name = f"proj001/sh0010/plates/plate.{i:04d}.exr"
        assert _digest(london_root / name) == _digest(hq_root / name)
    for name in ("comp_v001.nk", "render.0001.exr"):
        rel = f"proj001/sh0010/comp/{name}"
        assert _digest(hq_root / rel) == _digest(london_root / rel)
    for root in (hq_root, london_root):
        assert not list(root.rglob("*.reelsync-part"))


def test_folder_tasks_move_whole_shots_both_ways(studio: dict[str, Any]) -> None:
    """The accsyn job JSON names shot folders, not files: each folder is one task whose files
    arrive mirrored (hq -> london is pulled by the london agent behind NAT; london -> hq is
    pushed by it)."""
    server: RunningServer = studio["server"]
    hq_root: Path = studio["roots"]["hq"]
    london_root: Path = studio["roots"]["london"]
    scans = hq_root / "proj002" / "sc0010" / "sh0010" / "scans"
    (scans / "meta").mkdir(parents=True)
    frames = {f"plate.{1001 + i}.exr": os.urandom(300_000 + i) for i in range(4)}
    for name, data in frames.items():
        (scans / name).write_bytes(data)
    (scans / "meta" / "plate.json").write_text('{"colorspace": "ACES"}')
    comp = london_root / "proj002" / "sc0010" / "sh0010" / "comp"
    comp.mkdir(parents=True)
    (comp / "comp_v002.nk").write_bytes(os.urandom(20_000))

    with server.session() as admin:
        pushed = admin.submit_job(
            {
                "name": "shot folder to london",
                "mirror_paths": True,
                "tasks": [
                    {
                        "source": "share=projects/proj002/sc0010/sh0010/scans",
                        "destination": "site=london",
                    }
                ],
            }
        )
        pulled = admin.submit_job(
            {
                "name": "comp folder back",
                "tasks": [
                    {
                        "source": "site=london:share=projects/proj002/sc0010/sh0010/comp",
                        "destination": "site=hq",
                    }
                ],
            }
        )

        def ended(job_id: str) -> dict[str, Any] | None:
            job: dict[str, Any] = admin.get_entity("job", job_id)
            return job if job["status"] in ("done", "failed") else None

        down = wait_until(lambda: ended(pushed["id"]), 90, "the folder push")
        up = wait_until(lambda: ended(pulled["id"]), 90, "the folder pull")
        (task,) = admin.tasks(pushed["id"])
    assert down["status"] == "done", (down, task, studio["london"].log())
    assert up["status"] == "done", (up, studio["london"].log())
    assert task["size"] == sum(len(d) for d in frames.values()) + len('{"colorspace": "ACES"}')
    assert task["files"] == 5  # the folder's files, counted for the job's e-mail
    got = london_root / "proj002" / "sc0010" / "sh0010" / "scans"
    for name, data in frames.items():
        assert (got / name).read_bytes() == data
    assert (got / "meta" / "plate.json").read_text() == '{"colorspace": "ACES"}'
    back = hq_root / "proj002" / "sc0010" / "sh0010" / "comp" / "comp_v002.nk"
    assert back.read_bytes() == (comp / "comp_v002.nk").read_bytes()
