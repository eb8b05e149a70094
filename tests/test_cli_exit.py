"""How a ``reelsync`` process starts and ends: what its start does not import; a sync ends without
the interpreter's teardown (``reelsync.cli._quick_exit``), its output flushed and its exit
functions run first; with another thread still alive it ends the ordinary way."""

from __future__ import annotations

import subprocess
import sys


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_quick_exit_flushes_output_and_runs_exit_functions() -> None:
    done = _run(
        "import atexit, sys\n"
        "from reelsync import cli\n"
        "atexit.register(lambda: print('exit function ran', file=sys.stderr))\n"
        "sys.stdout.write('all files synced')  # no newline: still buffered\n"
        "cli._quick_exit(3)\n"
        "print('not reached')\n"
    )
    assert done.returncode == 3
    assert done.stdout == "all files synced"
    assert done.stderr == "exit function ran\n"


def test_quick_exit_leaves_a_process_with_another_thread_to_the_interpreter() -> None:
    done = _run(
        "import sys, threading\n"
        "from reelsync import cli\n"
        "go = threading.Event()\n"
        "worker = threading.Thread(target=lambda: (go.wait(), print('worker done')))\n"
        "worker.start()\n"
        "cli._quick_exit(3)\n"
        "print('returned')\n"
        "go.set()\n"
        "sys.exit(4)\n"
    )
    assert done.returncode == 4
    assert done.stdout == "returned\nworker done\n"


def test_the_cli_does_not_import_httpx_command_line_tool() -> None:
    """httpx's own CLI (pygments, rich.syntax) is declined: ~10 ms of every command's start."""
    done = _run(
        "import sys\n"
        "import reelsync.cli, reelsync.cli.sync, httpx\n"
        "loaded = [m for m, mod in sys.modules.items() if mod is not None]\n"
        "print(sorted(m for m in loaded if m.startswith(('pygments', 'httpx._main'))))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_sync_command_starts_without_what_following_needs() -> None:
    """``reelsync sync`` starts without rich and what following a job needs (loaded while the
    source agent sizes the paths), and without the control plane's, the database's or the
    engine's modules."""
    done = _run(
        "import sys\n"
        "import reelsync.cli, reelsync.cli.sync\n"
        "heavy = ('rich', 'pydantic', 'sqlalchemy', 'fastapi', 'reelsync.server', 'reelsync.db',\n"
        "         'reelsync.engine', 'reelsync.sync.watch', 'reelsync.sync.jobview',\n"
        "         'reelsync.cli.job')\n"
        "print(sorted(m for m, mod in sys.modules.items() if mod and m.startswith(heavy)))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
