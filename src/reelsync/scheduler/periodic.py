"""A background pass run again and again: the server's sweep and housekeeping loops.

Rules: the pass runs at once, then ``interval_s()`` after each pass ends (read each time, so an
owner may change it) until :meth:`PeriodicPass.stop`; a failing pass (database down) is logged --
a reelsync error as a warning, anything else (a defect) with its traceback -- and the next tick
tries again: a failure never ends the loop. ``stop()`` waits for the running pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from reelsync.errors import ReelsyncError

__all__ = ["PeriodicPass"]


class PeriodicPass:
    """Runs ``run_pass`` every ``interval_s()`` seconds in a task named ``name``; failures are
    logged on ``log`` as ``"<what> failed"``."""

    def __init__(
        self,
        run_pass: Callable[[], Awaitable[None]],
        *,
        interval_s: Callable[[], float],
        name: str,
        what: str,
        log: logging.Logger,
    ) -> None:
        self._run_pass = run_pass
        self._interval_s = interval_s
        self._name = name
        self._what = what
        self._log = log
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._run_pass()
            except ReelsyncError as exc:
                self._log.warning("%s failed: %s", self._what, exc)
            except Exception:  # a defect: logged with its traceback, the loop goes on
                self._log.exception("%s failed", self._what)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._interval_s())
