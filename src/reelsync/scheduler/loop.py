"""The server process's scheduler loop: :func:`~reelsync.scheduler.sweep.sweep` every few seconds.

Rules: one :class:`Sweeper` per control-plane process (several processes on one database are fine);
the sweep runs in a worker thread so the event loop keeps serving; a failing sweep (database down)
is logged and retried at the next tick, never ends the loop; ``stop()`` waits for the running sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.errors import ReelsyncError
from reelsync.scheduler.sweep import sweep

__all__ = ["DEFAULT_INTERVAL_S", "Sweeper"]

DEFAULT_INTERVAL_S = 5.0
_log = logging.getLogger("reelsync.scheduler")


class Sweeper:
    def __init__(
        self,
        db: Database,
        *,
        offline_after_s: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        fence_s: float = DEFAULT_FENCE_S,
    ) -> None:
        self._db = db
        self.offline_after_s = offline_after_s
        self.fence_s = fence_s
        self.interval_s = interval_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="reelsync-sweeper")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = await asyncio.to_thread(
                    sweep, self._db, offline_after_s=self.offline_after_s, fence_s=self.fence_s
                )
                if result.offline or result.released:
                    _log.info(
                        "sweep: %d agent(s) offline, %d task(s) back to the queue",
                        len(result.offline),
                        result.released,
                    )
            except ReelsyncError as exc:
                _log.warning("sweep failed: %s", exc)
            except Exception:
                _log.exception("sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)

    async def __aenter__(self) -> Sweeper:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
