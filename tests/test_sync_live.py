"""``reelsync sync`` end to end with real processes: a control plane (``reelsync server run``), an
agent at hq and one at london (``reelsync agent run``) moving real files, the CLI as the employee
operator; both directions, --wait's exit code, the agent-offline error, and the accsyn-client
example (examples/accsyn_site_sync.py) against the same server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelsync.demo.tree import compare_trees
from support.agents import RunningAgent, running_agent
from support.servers import RunningServer, running_server
from sync_world import OPERATOR, World, build_world, make_tree

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SHOT1 = "proj001/sc0010/sh0010/scans"
SHOT2 = "proj001/sc0010/sh0020/scans"


@dataclass
class Studio:
    server: RunningServer
    world: World
    agents: dict[str, RunningAgent]

    def sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.server.cli(
            "sync", *args, REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=self.world.operator_key
        )

    def root(self, site: str) -> Path:
        return self.world.volume_root(site)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    base = tmp_path_factory.mktemp("sync-live")
    with ExitStack() as stack:
        server = stack.enter_context(running_server(base / "server"))
        with server.session() as admin:
            world = build_world(admin, base / "studio")
        agents = {
            site: stack.enter_context(running_agent(server, site, base / f"agent-{site}"))
            for site in ("hq", "london")
        }
        for agent in agents.values():
            agent.wait_online()
        yield Studio(server, world, agents)


def test_download_with_wait_moves_every_file(studio: Studio) -> None:
    make_tree(studio.root("hq"), "proj001/sc0010/sh0010", frames=20, size=200_000)
    make_tree(studio.root("hq"), "proj001/sc0010/sh0020", frames=5)
    done = studio.sync("--site", "london", SHOT1, SHOT2, "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr + studio.server.log()
    assert "created job 'proj001 download london " in done.stderr
    assert "all files synced" in done.stderr
    check = compare_trees(studio.root("hq"), studio.root("london"), [SHOT1, SHOT2])
    assert check.ok, check
    assert check.files == 27

    shown = studio.server.cli("job", "list", "--json")
    (job,) = [j for j in json.loads(shown.stdout) if j["name"].startswith("proj001 download")]
    view = json.loads(studio.server.cli("job", "show", job["id"], "--json").stdout)
    assert view["status"] == "done"
    assert view["progress"] == 100
    assert view["failed_tasks"] == []
    assert view["notes"] == []

    # The same sync again the same day: the finished job is revived, not a new one.
    again = studio.sync("--site", "london", SHOT1, "--wait", "--json", "--timeout", "120")
    assert again.returncode == 0, again.stderr
    body = json.loads(again.stdout)
    assert body["jobs"][0]["action"] == "revived"
    assert body["jobs"][0]["job"]["id"] == job["id"]
    assert body["final"][0]["status"] == "done"


def test_upload_pulls_from_london(studio: Studio) -> None:
    made = make_tree(studio.root("london"), "proj001/sc0010/sh0030", frames=4)
    path = "proj001/sc0010/sh0030/scans"
    done = studio.sync("--upload", path, "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr
    assert "proj001 upload london" in done.stderr
    assert "london -> hq" in done.stderr
    for f in made:
        assert (studio.root("hq") / f.relative_to(studio.root("london"))).read_bytes() == (
            f.read_bytes()
        )


def test_job_submit_from_a_file_waits_until_done(studio: Studio, tmp_path: Path) -> None:
    made = make_tree(studio.root("hq"), "proj001/sc0020/sh0010", frames=3, size=300_000)
    spec = tmp_path / "job.json"
    rels = [str(f.relative_to(studio.root("hq"))) for f in made]
    spec.write_text(
        json.dumps(
            {
                "name": "hand-made job",
                "destination": "site=london",
                "tasks": [f"volume=projects/{rel}" for rel in rels],
            }
        )
    )
    done = studio.server.cli(
        "job", "submit", str(spec), "--queue", "proj001", "--wait", "--json", "--timeout", "120",
        REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=studio.world.operator_key,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["final"]["status"] == "done"
    assert body["final"]["progress"] == 100
    for rel in rels:
        assert (studio.root("london") / rel).read_bytes() == (studio.root("hq") / rel).read_bytes()


def test_tool_plugin_example_syncs_the_selected_shots(studio: Studio) -> None:
    made = make_tree(studio.root("hq"), "proj001/sc0030/sh0300", frames=3)
    env = studio.server.env(REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=studio.world.operator_key)
    script = str(REPO / "examples" / "tool_plugin.py")
    done = subprocess.run(
        [sys.executable, script, "--site", "london", "proj001/sc0030/sh0300", "--wait"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all shots synced" in done.stdout
    for f in made:
        assert (studio.root("london") / f.relative_to(studio.root("hq"))).read_bytes() == (
            f.read_bytes()
        )
    unknown = subprocess.run(
        [sys.executable, script, "--site", "paris", "proj001/sc0030/sh0300"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: unknown site 'paris' (sites: hq, london)"
    ]


def test_accsyn_client_example_submits_the_same_workflow(studio: Studio) -> None:
    make_tree(studio.root("hq"), "proj001/sc0020/sh0100", frames=3)
    server = studio.server
    env = server.env(
        ACCSYN_WORKSPACE=server.workspace,
        ACCSYN_API_USER=OPERATOR,
        ACCSYN_API_KEY=studio.world.operator_key,
    )
    script = str(REPO / "examples" / "accsyn_site_sync.py")
    args = [sys.executable, script, "--hostname", "127.0.0.1", "--port", str(server.port)]
    ok = subprocess.run(
        [*args, "--site", "london", "proj001/sc0020/sh0100/scans"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=server.home,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "proj001 download london" in ok.stdout
    missing = subprocess.run(
        [*args, "--site", "london", "proj001/sc0020/sh9999/scans"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=server.home,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: proj001/sc0020/sh9999/scans does not exist at hq"
    ]


def test_agent_offline_is_one_line_and_submits_nothing(studio: Studio) -> None:
    make_tree(studio.root("hq"), "proj001/sc0010/sh0040", frames=1)
    with studio.server.session() as admin:
        before = len(admin.find("job"))
        london = studio.agents["london"].server_id
        admin.update("server", london, {"status": "disabled"})
        try:
            done = studio.sync("--site", "london", "proj001/sc0010/sh0040/scans")
        finally:
            admin.update("server", london, {"status": "enabled"})
        assert len(admin.find("job")) == before
    studio.agents["london"].wait_online()
    assert done.returncode == 75
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no agent is online at site london")


def test_wait_exits_non_zero_listing_the_failed_files(studio: Studio) -> None:
    made = make_tree(studio.root("hq"), "proj001/sc0010/sh0050", frames=3)
    path = "proj001/sc0010/sh0050/scans"
    with studio.server.session() as admin:
        admin.request(
            "PUT",
            "/settings",
            json_body={"scope": "queue", "target": "proj001", "key": "job_max_retries", "value": 0},
        )
        admin.update("queue", "proj001", {"paused": True})  # hold the job until a file is gone
        try:
            frame = f"{path}/{made[1].name}"
            held = studio.sync(frame, "--json")  # a frame, on its own (a folder is listed later)
            assert held.returncode == 0, held.stderr
            made[1].unlink()  # an artist deletes the frame after it was submitted
        finally:
            admin.update("queue", "proj001", {"paused": False})
    done = studio.sync(path, "--wait", "--timeout", "120")
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: job 'proj001 download london ")
    assert "failed: 1 task(s) failed - projects/proj001/sc0010/sh0050/scans/sh0050.1002.exr" in last
    assert "last error" in done.stderr  # the failed tasks table
