"""The interim `reelsync demo` (control plane only) runs end to end and cleans up after itself.
The demo owner replaces this file when the full demo (agents + sync) lands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.servers import child_env, run_cli

pytestmark = pytest.mark.slow


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    done = run_cli(["demo"], child_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "control plane up at https://127.0.0.1:" in done.stdout
    assert "london" in done.stdout
    assert "proj001" in done.stdout
    assert "Traceback" not in done.stderr
    found = re.search(r"reelsync demo in (\S+)", done.stdout)
    assert found is not None
    assert not Path(found.group(1)).exists()
