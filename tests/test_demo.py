"""``reelsync demo`` end to end as a user runs it: one command starts a control plane, a local SMTP
server and two agents, syncs two shots hq -> london, verifies every file by digest, prints the
captured e-mail, stops everything and removes its directory; Ctrl-C cleans up too."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.servers import child_env, reelsync_cmd, run_cli

pytestmark = pytest.mark.slow


def _demo_dir(output: str) -> Path:
    found = re.search(r"reelsync demo in (\S+)", output)
    assert found is not None, output
    return Path(found.group(1))


def test_demo_syncs_verifies_mails_and_cleans_up(tmp_path: Path) -> None:
    done = run_cli(["demo", "--files", "4"], child_env(tmp_path), timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    # 2 shots x (4 frames + 3 sidecars), every one compared at london against hq
    assert re.search(r"verified\s+14 files, .*: every file at london matches hq", out), out
    if importlib.util.find_spec("reelsync.notify.service") is not None:  # the notifier is in
        assert "Subject:" in out
    assert "coordinator@demo.local" in out
    assert "proj001 download london" in out
    assert "reelsync job show " in out
    assert not _demo_dir(out).exists()


def test_ctrl_c_stops_everything_and_removes_the_directory(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        reelsync_cmd("demo", "--files", "2", "--keep"),
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if "reelsync job show" in line and "API:" in line or time.monotonic() > deadline:
            break
    output = "".join(lines)
    assert "API:" in output, output + (proc.stderr.read() if proc.stderr else "")
    assert re.search(r"web UI: https://127\.0\.0\.1:\d+/ui/", output), output
    pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
    proc.send_signal(signal.SIGINT)
    try:
        rest, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, output + rest + err
    assert "Traceback" not in err
    assert not _demo_dir(output).exists()
    for pid in pids:  # the control plane is gone too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
