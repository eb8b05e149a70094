"""Hooks (accsyn spec section 3): an admin's command run on the control plane at job events.

Rules:
- Hook names: ``pre-submit``, ``post-done``, ``post-failed``. The command line comes from a setting
  (workspace or queue scope, see :data:`HOOK_SETTING_KEYS`). It is split like a shell would
  (``shlex``) but run WITHOUT a shell; every ``${PATH_JSON_INPUT}`` is replaced by the path of a
  temporary JSON file holding the job (its fields, ``tasks`` and ``hook``), removed afterwards.
- A hook that runs longer than its timeout (``hook_timeout_s``, default 300 s) is killed with its
  whole process group and counts as failed; so does a non-zero exit or a missing program.
- A failing ``pre-submit`` hook rejects the job: :func:`check_pre_submit` raises
  :class:`ValidationError` carrying the hook's stderr (or stdout) message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelsync.errors import ConfigError, ValidationError

__all__ = [
    "DEFAULT_HOOK_TIMEOUT_S",
    "HOOK_NAMES",
    "HOOK_SETTING_KEYS",
    "HOOK_TIMEOUT_SETTING",
    "INPUT_PLACEHOLDER",
    "HookResult",
    "check_pre_submit",
    "parse_hook_timeout",
    "run_hook",
]

INPUT_PLACEHOLDER = "${PATH_JSON_INPUT}"
DEFAULT_HOOK_TIMEOUT_S = 300.0
HOOK_NAMES = ("pre-submit", "post-done", "post-failed")
#: hook name -> the setting key (workspace or queue scope) holding its command line
HOOK_SETTING_KEYS = {
    "pre-submit": "hook_pre_submit",
    "post-done": "hook_post_done",
    "post-failed": "hook_post_failed",
}
HOOK_TIMEOUT_SETTING = "hook_timeout_s"
_MESSAGE_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class HookResult:
    hook: str
    command: str
    returncode: int | None  # None when killed by the timeout
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0

    @property
    def message(self) -> str:
        """What the hook said (stderr first), or what went wrong with it."""
        said = (self.stderr.strip() or self.stdout.strip())[:_MESSAGE_LIMIT]
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f} s" + (f": {said}" if said else "")
        if self.returncode != 0:
            return said or f"exited with status {self.returncode}"
        return said


def parse_hook_timeout(value: str | None) -> float:
    """The ``hook_timeout_s`` setting (a positive number of seconds), default 300."""
    if value is None or str(value).strip() == "":
        return DEFAULT_HOOK_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{HOOK_TIMEOUT_SETTING} must be a number, got {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"{HOOK_TIMEOUT_SETTING} must be positive, got {value!r}")
    return seconds


def _argv(command: str, input_path: Path) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"hook command {command!r} does not parse: {exc}") from exc
    if not argv:
        raise ConfigError("hook command is empty")
    return [a.replace(INPUT_PLACEHOLDER, str(input_path)) for a in argv]


def run_hook(
    hook: str,
    command: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_HOOK_TIMEOUT_S,
    tmp_dir: Path | None = None,
) -> HookResult:
    """Run one hook to completion (blocking; call it through ``asyncio.to_thread`` from async)."""
    document = {**payload, "hook": hook}
    fd, name = tempfile.mkstemp(prefix=f"reelsync-{hook}-", suffix=".json", dir=tmp_dir)
    input_path = Path(name)
    started = time.monotonic()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, default=str, indent=1)
        argv = _argv(command, input_path)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return HookResult(
                hook, command, 127, "", f"cannot run {argv[0]!r}: {exc.strerror or exc}", False,
                time.monotonic() - started,
            )  # fmt: skip
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return HookResult(
            hook=hook,
            command=command,
            returncode=None if timed_out else proc.returncode,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
        )
    finally:
        input_path.unlink(missing_ok=True)


def check_pre_submit(result: HookResult) -> None:
    """Raise :class:`ValidationError` (the job is refused) unless the pre-submit hook passed."""
    if not result.ok:
        raise ValidationError(f"the pre-submit hook rejected the job: {result.message}")
