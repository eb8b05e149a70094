"""The server process's housekeeping loop: the running totals folded every few seconds
(:func:`reelsync.services.tally.compact`; vacuumed once :data:`VACUUM_AFTER_ROWS` rows have been
folded away) and old history pruned every few minutes (:func:`reelsync.services.history.prune`).

Rules: one loop per control-plane process (several on one database are safe: both jobs are
transactions that take exactly what they fold or delete); the work runs in a worker thread; a
failure (database down) is logged and retried at the next tick, never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from reelsync.db import Database
from reelsync.errors import ReelsyncError
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
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Housekeeper:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="reelsync-housekeeping")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        pruned_at = time.monotonic()  # the first prune a while after start, not at once
        folded = 0
        while not self._stop.is_set():
            try:
                folded += await asyncio.to_thread(tally.compact, self._db)
                if folded >= self.vacuum_after_rows:
                    await asyncio.to_thread(tally.vacuum, self._db)
                    folded = 0
                    self.vacuums += 1
                if time.monotonic() - pruned_at >= self.prune_every_s:
                    pruned_at = time.monotonic()
                    gone = await asyncio.to_thread(history.prune, self._db)
                    if gone:
                        _log.info("pruned %d finished task(s) past their days", gone)
            except ReelsyncError as exc:
                _log.warning("housekeeping failed: %s", exc)
            except Exception:  # a defect: logged with its traceback, the loop goes on
                _log.exception("housekeeping failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.compact_every_s)
