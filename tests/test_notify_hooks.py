"""Hooks run as real processes: success, failure, timeout, the JSON input file."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from reelsync.errors import ConfigError, ValidationError
from reelsync.notify.hooks import check_pre_submit, parse_hook_timeout, run_hook

JOB = {"id": "j1", "name": "shots", "queue": "proj001", "tasks": [{"uri": "0", "source": "a"}]}
PY = sys.executable


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return f"{PY} {path} ${{PATH_JSON_INPUT}}"


def test_hook_gets_the_job_json(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    cmd = script(
        tmp_path,
        f"import json,shutil,sys\nshutil.copy(sys.argv[1], {str(out)!r})\nprint('fine')\n",
    )
    result = run_hook("post-done", cmd, JOB, tmp_dir=tmp_path)
    assert result.ok, result
    assert result.stdout.strip() == "fine"
    seen = json.loads(out.read_text())
    assert seen["hook"] == "post-done"
    assert seen["tasks"] == JOB["tasks"]
    assert seen["name"] == "shots"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("reelsync-")]
    assert leftovers == []  # the input file is removed afterwards
    check_pre_submit(result)  # passes


def test_failing_pre_submit_rejects_with_its_message(tmp_path: Path) -> None:
    cmd = script(
        tmp_path, "import sys\nsys.stderr.write('queue proj001 is frozen\\n')\nsys.exit(3)\n"
    )
    result = run_hook("pre-submit", cmd, JOB)
    assert not result.ok
    assert result.returncode == 3
    with pytest.raises(ValidationError, match="rejected the job: queue proj001 is frozen"):
        check_pre_submit(result)


def test_stdout_is_the_message_when_stderr_is_empty(tmp_path: Path) -> None:
    result = run_hook(
        "pre-submit", script(tmp_path, "print('no budget')\nraise SystemExit(1)\n"), JOB
    )
    assert result.message == "no budget"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child-alive"
    child = tmp_path / "child.py"
    child.write_text(
        f"import time,pathlib\ntime.sleep(1.5)\npathlib.Path({str(marker)!r}).touch()\n"
    )
    body = (
        "import subprocess,sys,time\n"
        f"subprocess.Popen([sys.executable, {str(child)!r}])\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    result = run_hook("pre-submit", script(tmp_path, body), JOB, timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    assert result.timed_out
    assert not result.ok
    assert result.returncode is None
    with pytest.raises(ValidationError, match="timed out"):
        check_pre_submit(result)
    time.sleep(2)
    assert not marker.exists()  # the grandchild died with its group


def test_missing_program_is_a_failure(tmp_path: Path) -> None:
    result = run_hook("post-failed", "/nonexistent/hook ${PATH_JSON_INPUT}", JOB)
    assert result.returncode == 127
    assert "cannot run" in result.message


def test_bad_command_lines_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="empty"):
        run_hook("post-done", "   ", JOB)
    with pytest.raises(ConfigError, match="does not parse"):
        run_hook("post-done", "echo 'unclosed", JOB)


def test_parse_hook_timeout() -> None:
    assert parse_hook_timeout(None) == 300.0
    assert parse_hook_timeout("12.5") == 12.5
    with pytest.raises(ConfigError):
        parse_hook_timeout("soon")
    with pytest.raises(ConfigError):
        parse_hook_timeout("0")
