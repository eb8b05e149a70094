"""The demo's child processes: ``reelsync server init|run`` and ``reelsync agent enroll|run``,
each started with this very Python (``sys.executable -m reelsync``), logging to a file in the
demo's directory. Rules: children get their own session (a Ctrl-C reaches only the demo, which
then stops them in order); stopping is SIGTERM, then SIGKILL after a grace period; a child that
dies early is reported with the end of its log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelsync.errors import InternalError

__all__ = ["Child", "Children", "reelsync_json"]


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "reelsync", *args]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def reelsync_json(args: Sequence[str], env: Mapping[str, str], log: Path) -> Any:
    """Run ``reelsync ARGS --json`` to completion; its JSON answer (stderr goes to ``log``)."""
    with log.open("ab") as err:
        done = subprocess.run(
            _command([*args, "--json"]),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=120,
            check=False,
            start_new_session=True,
        )
    if done.returncode != 0:
        raise InternalError(
            f"'reelsync {' '.join(args[:2])}' failed with exit code {done.returncode}:\n"
            + _tail(log)
        )
    return json.loads(done.stdout)


@dataclass(eq=False)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise InternalError(
                f"the demo's {self.name} exited with code {self.process.returncode}:\n"
                + _tail(self.log)
            )


@dataclass(eq=False)
class Children:
    """Long-running children, stopped in reverse order of start."""

    log_dir: Path
    running: list[Child] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> Child:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                _command(args),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.running.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.running:
            child.check_alive()

    def stop(self, grace_s: float = 20.0) -> list[str]:
        """Stop every child; the names of those that did not exit cleanly."""
        unclean: list[str] = []
        for child in reversed(self.running):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in reversed(self.running):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            if child.process.returncode != 0:
                unclean.append(f"{child.name} (exit {child.process.returncode})")
        self.running.clear()
        return unclean
