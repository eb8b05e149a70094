"""One caller's share of a session: the files it handed in, their results, and its observer.

Rules: a session kept open (protocol version 3) carries the work of many callers, each a
:class:`WorkGroup`; a group is complete when every key it was given has a result (a folder's key
counts once, when its files are all settled). A session that fails fails every group still open
with that error; the results already in stay in :attr:`WorkGroup.results` (the caller retries
only the rest). A group with ``keys`` None never completes (a listener's view of its session).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from reelsync.engine.folders import FolderObserver
from reelsync.engine.model import FileResult, TransferObserver

__all__ = ["OpenWork", "WorkGroup"]


class WorkGroup:
    def __init__(self, keys: Iterable[str] | None, observer: TransferObserver) -> None:
        self.keys: frozenset[str] | None = None if keys is None else frozenset(keys)
        self.observer = FolderObserver(observer)
        self.results: dict[str, FileResult] = {}
        self.priority = 0  # a sender sends a higher priority's bytes first
        self._done = asyncio.get_running_loop().create_future()
        if self.keys is not None and not self.keys:
            self._done.set_result(None)

    @property
    def done(self) -> bool:
        return self._done.done()

    def record(self, result: FileResult) -> None:
        """A top-level key's final result (the session's files of folders are folded first)."""
        if self.keys is None or result.key in self.results:
            return  # a listener's group keeps nothing: its session may run for hours
        self.results[result.key] = result
        if not self._done.done() and len(self.results) >= len(self.keys):
            self._done.set_result(None)

    def fail(self, error: BaseException) -> None:
        """The session ended before every key had a result."""
        if not self._done.done():
            self._done.set_exception(error)
            self._done.exception()  # retrieved: a group nobody awaits is not an error to log

    async def wait(self) -> dict[str, FileResult]:
        """Every result, once each key has one; the session's error otherwise."""
        await asyncio.shield(self._done)
        return self.results


class OpenWork:
    """What both ends' open-ended sessions share: fresh ids, the open groups, closing."""

    _next_id: int
    _groups: set[WorkGroup]
    _closing: bool

    def allocate(self, count: int) -> range:
        """``count`` fresh file ids for the session's ``add``."""
        ids = range(self._next_id, self._next_id + count)
        self._next_id += count
        return ids

    @property
    def busy(self) -> bool:
        """Work added and not settled yet."""
        return bool(self._groups)

    @property
    def top_priority(self) -> int | None:
        """The highest priority of the work in flight (None: idle)."""
        return max((g.priority for g in self._groups), default=None)

    def close(self) -> None:
        """End the session (Bye) once the work in flight is settled; nothing may be added."""
        self._closing = True
        self._maybe_end()

    def _maybe_end(self) -> None:
        raise NotImplementedError
