"""The server process's housekeeping loop: the running totals folded every few seconds
(:func:`reelsync.services.tally.compact`; vacuumed once :data:`VACUUM_AFTER_ROWS` rows have been
folded away) and old history pruned every few minutes (:func:`reelsync.services.history.prune`).

Rules: one loop per control-plane process (several on one database are safe: both jobs are
transactions that take exactly what they fold or delete); the work runs in a worker thread; a
failure (database down) is logged and retried at the next tick, never ends the loop
(:class:`reelsync.scheduler.periodic.PeriodicPass`, as the sweep's).
"""

from __future__ import annotations

import asyncio
import logging
import time

from reelsync.db import Database
from reelsync.scheduler.periodic import PeriodicPass
from reelsync.services import history, tally

__all__ = ["Housekeeper"]

_log = logging.getLogger("reelsync.server")

#: How many tally rows folded away (dead rows on PostgreSQL) before the table is vacuumed.
VACUUM_AFTER_ROWS = 10_000


class Housekeeper:
    def __init__(
        self,
        db: Database,
        *,
        compact_every_s: float = 5.0,
        prune_every_s: float = 600.0,
        vacuum_after_rows: int = VACUUM_AFTER_ROWS,
    ) -> None:
        self._db = db
        self.vacuum_after_rows = vacuum_after_rows
        self.vacuums = 0  # how many times the tally was vacuumed (for tests)
        self.compact_every_s = compact_every_s
        self.prune_every_s = prune_every_s
        self._folded = 0  # tally rows folded away since the last vacuum
        self._pruned_at: float | None = None
        self._loop = PeriodicPass(
            self._pass,
            interval_s=lambda: self.compact_every_s,
            name="reelsync-housekeeping",
            what="housekeeping",
            log=_log,
        )

    async def __aenter__(self) -> Housekeeper:
        self._folded, self._pruned_at = 0, None
        await self._loop.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._loop.stop()

    async def _pass(self) -> None:
        if self._pruned_at is None:  # the first prune a while after start, not at once
            self._pruned_at = time.monotonic()
        self._folded += await asyncio.to_thread(tally.compact, self._db)
        if self._folded >= self.vacuum_after_rows:
            await asyncio.to_thread(tally.vacuum, self._db)
            self._folded = 0
            self.vacuums += 1
        if time.monotonic() - self._pruned_at >= self.prune_every_s:
            self._pruned_at = time.monotonic()
            gone = await asyncio.to_thread(history.prune, self._db)
            if gone:
                _log.info("pruned %d finished task(s) past their days", gone)
