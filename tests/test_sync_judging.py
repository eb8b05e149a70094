"""``reelsync sync`` with real processes, on the day's job other syncs share: ``--queue`` moves the
day's job to the queue asked for (and says so), and ``--wait`` judges only what this sync asked
for: a healthy shot exits 0 although another shot of the day's job failed earlier, a failing shot
exits non-zero naming its own file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from support.agents import running_agent
from support.servers import RunningServer, running_server
from sync_world import OPERATOR, World, build_world, make_tree

pytestmark = pytest.mark.slow


@dataclass
class Studio:
    server: RunningServer
    world: World

    def sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.server.cli(
            "sync", *args, REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=self.world.operator_key
        )


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    base = tmp_path_factory.mktemp("sync-judging")
    with ExitStack() as stack:
        server = stack.enter_context(running_server(base / "server"))
        with server.session() as admin:
            world = build_world(admin, base / "studio")
            admin.request(
                "PUT", "/settings",
                json_body={"scope": "workspace", "key": "job_max_retries", "value": "0"},
            )  # fmt: skip
        for site in ("hq", "london"):
            stack.enter_context(running_agent(server, site, base / f"agent-{site}")).wait_online()
        yield Studio(server, world)


def test_sync_queue_moves_the_days_job_to_the_queue_asked_for(studio: Studio) -> None:
    hq = studio.world.volume_root("hq")
    make_tree(hq, "proj001/sc0100/sh0010", frames=2)
    make_tree(hq, "proj001/sc0100/sh0020", frames=2)
    first = studio.sync("--site", "london", "proj001/sc0100/sh0010/scans", "--json")
    assert first.returncode == 0, first.stderr
    job = json.loads(first.stdout)["jobs"][0]
    assert job["queue"] == "proj001"
    again = studio.sync(
        "--site", "london", "proj001/sc0100/sh0020/scans", "--queue", "high", "--json"
    )
    assert again.returncode == 0, again.stderr
    moved = json.loads(again.stdout)["jobs"][0]
    assert moved["job"]["id"] == job["job"]["id"]  # the same day's job ...
    assert moved["queue"] == "high"  # ... in the queue asked for
    assert "moved from queue proj001 to high" in again.stderr.lower(), again.stderr


def test_wait_judges_only_what_this_sync_asked_for(studio: Studio) -> None:
    hq, london = studio.world.volume_root("hq"), studio.world.volume_root("london")
    broken = make_tree(hq, "proj001/sc0200/sh0010", frames=2)
    # a directory where one file should land at london: that file cannot be written
    blocker = london / broken[0].relative_to(hq)
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("x")
    failing = studio.sync("--site", "london", "proj001/sc0200/sh0010/scans", "--wait")
    assert failing.returncode != 0, failing.stderr
    assert broken[0].name in failing.stderr, failing.stderr

    healthy = make_tree(hq, "proj001/sc0200/sh0020", frames=3)
    good = studio.sync("--site", "london", "proj001/sc0200/sh0020/scans", "--wait")
    assert good.returncode == 0, good.stderr
    assert "all files synced" in good.stderr
    assert "failed files from earlier syncs" in good.stderr, good.stderr
    for path in healthy:
        assert (london / path.relative_to(hq)).read_bytes() == path.read_bytes()
