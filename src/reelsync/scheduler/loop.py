"""The server process's scheduler loop: :func:`~reelsync.scheduler.sweep.sweep` every few seconds.

Rules: one :class:`Sweeper` per control-plane process (several processes on one database are fine);
the sweep runs in a worker thread so the event loop keeps serving; a failing sweep (database down)
is logged and retried at the next tick, never ends the loop; ``stop()`` waits for the running sweep
(:class:`~reelsync.scheduler.periodic.PeriodicPass`).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from reelsync.config import DEFAULT_FENCE_S
from reelsync.db import Database
from reelsync.scheduler.periodic import PeriodicPass
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
        self.interval_s = interval_s
        self.fence_s = fence_s
        self._loop = PeriodicPass(
            self._sweep,
            interval_s=lambda: self.interval_s,
            name="reelsync-sweeper",
            what="sweep",
            log=_log,
        )

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _sweep(self) -> None:
        result = await asyncio.to_thread(
            sweep, self._db, offline_after_s=self.offline_after_s, fence_s=self.fence_s
        )
        if result.offline or result.released:
            _log.info(
                "sweep: %d agent(s) offline, %d task(s) back to the queue",
                len(result.offline),
                result.released,
            )

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
