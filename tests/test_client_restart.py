"""A user's command rides out a control-plane restart: a real ``reelsync sync --wait`` keeps going
while the control plane is SIGKILLed mid-job and started again 3 s later, and exits 0 with every
file there; when the control plane stays down past the retry window the command says, in one
line, to run it again."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.agents import running_agent, wait_until
from support.servers import RunningServer, reelsync_cmd, start_server_process
from sync_world import OPERATOR, build_world, make_tree

pytestmark = pytest.mark.slow

SHOT = "proj001/sc0010/sh0010"
DOWN_S = 3.0  # longer than the client's longest pause between retries (2 s)


def test_sync_wait_rides_out_a_control_plane_restart(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory(check_clean_exit=False)
    with server.session() as admin:
        world = build_world(admin, tmp_path / "studio")
    made = make_tree(world.volume_root("hq"), SHOT, frames=60, size=256 * 1024)
    slow = ["--bandwidth-limit", "3"]  # MiB/s: the job takes about 5 s
    with (
        running_agent(server, "hq", tmp_path / "hq", enroll_extra=slow) as hq,
        running_agent(server, "london", tmp_path / "ldn") as london,
    ):
        hq.wait_online()
        london.wait_online()
        env = server.env(REELSYNC_API_USER=OPERATOR, REELSYNC_API_KEY=world.operator_key)
        sync = subprocess.Popen(
            reelsync_cmd("sync", "--site", "london", f"{SHOT}/scans", "--wait", "--timeout", "180"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with server.session() as admin:
                wait_until(
                    lambda: any(j["status"] == "running" for j in admin.find("job")),
                    60,
                    "the sync's job to run",
                )
            server.stop(signal.SIGKILL)
            time.sleep(DOWN_S)
            start_server_process(server)
            out, err = sync.communicate(timeout=180)
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait()
    assert sync.returncode == 0, err
    assert "all files synced" in err, err
    assert "Traceback" not in err
    hq_root, london_root = world.volume_root("hq"), world.volume_root("london")
    for path in made:
        assert (london_root / path.relative_to(hq_root)).read_bytes() == path.read_bytes()


def test_a_control_plane_down_for_good_says_run_it_again(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    server.stop()
    started = time.monotonic()
    done = server.cli("job", "list", REELSYNC_RETRY_S="2")
    assert time.monotonic() - started >= 1  # it did retry (0.2 s doubling within the 2 s)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "cannot reach" in lines[0], lines
    assert "run the same command again" in lines[0], lines
