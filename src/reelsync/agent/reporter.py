"""Progress and results of the transfers this agent dials, sent to the control plane in batches.

Rules: the engine calls the observer on the event loop (never blocking); the reporter keeps the
latest progress of each file and every final result, and a flusher sends them every
``interval_s`` in one ``POST /report``, or as soon as :meth:`Reporter.flush_soon` is called (a
transfer ended: its slot and its job's completion should not wait for the next tick; reports
arriving meanwhile are coalesced into one request). A file's progress goes at most every
``progress_s`` (a tick with only progress younger than that sends nothing): each report costs
the control plane a transaction and wakes whoever follows the job, on the CPU the data plane
uses. Final results are never dropped: if the
control plane cannot be reached they stay queued and go with the next flush. Files still in
flight are reported ``executing`` at least every ``keepalive_s`` so their leases do not expire
mid-transfer. Tasks the control plane answers as revoked (job paused or aborted, lease lost, the
file leased again to another transfer) are no longer reported and ``on_revoked`` is told, so the
agent can stop moving them; once such a transfer has stopped, :meth:`Reporter.stopped` says so in
the next report (the control plane holds its files back from another lease until then). Every
report names its transfer: the control plane credits it only to the lease it holds. One file
never holds back the others: an error text is cut to :data:`MAX_REPORTED_ERROR` characters, and
an item the control plane refuses (``rejected``) is logged and dropped while the rest of its
batch is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from reelsync.engine import FileResult
from reelsync.errors import ReelsyncError

__all__ = ["ReportSink", "Reporter", "TransferObserverFor"]

_log = logging.getLogger("reelsync.agent")
_COALESCE_S = 0.005  # a prompt flush waits this long for results finishing at the same moment
_EARLY_S = 0.05  # progress this close to ``progress_s`` old goes with this tick, not the next

#: The longest error text reported for one file (a long path in a message is cut in the middle).
MAX_REPORTED_ERROR = 1000


def _capped(text: str) -> str:
    if len(text) <= MAX_REPORTED_ERROR:
        return text
    half = (MAX_REPORTED_ERROR - 40) // 2  # room for the marker in the middle
    return f"{text[:half]} ...({len(text) - 2 * half} characters cut)... {text[-half:]}"


class ReportSink(Protocol):
    async def report(
        self, results: list[dict[str, Any]], *, stopped: Collection[str] = ()
    ) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class _Live:
    bytes_done: int
    size: int | None
    sent_at: float
    transfer_id: str | None = None


def result_report(result: FileResult) -> dict[str, Any]:
    """The ``/report`` item for a finished file or folder (a skip counts as done)."""
    if result.ok:
        item: dict[str, Any] = {
            "task_id": result.key,
            "status": "done",
            "bytes_done": result.size,
            "size": result.size,
            "digest": result.digest,
        }
    else:
        item = {
            "task_id": result.key,
            "status": "failed",
            "bytes_done": result.bytes_sent,
            "size": result.size or None,
            "error": _capped(f"{result.error_code}: {result.error_message}"),
            "retryable": result.retryable,
            "error_code": result.error_code,
        }
    if result.files != 1:
        item["files"] = result.files
    return item


class Reporter:
    """Collects progress and results, flushes them to ``sink``."""

    def __init__(
        self,
        sink: ReportSink,
        *,
        interval_s: float = 0.5,
        keepalive_s: float = 5.0,
        progress_s: float = 1.0,
        on_revoked: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.sink = sink
        self.on_revoked = on_revoked
        self.interval_s = interval_s
        self.keepalive_s = keepalive_s
        self.progress_s = progress_s
        self._live: dict[str, _Live] = {}
        self._dirty: set[str] = set()
        self._final: dict[str, dict[str, Any]] = {}
        self._stopped: set[str] = set()  # revoked transfers that have stopped, to be said
        self.renewed_at = time.monotonic()  # the control plane last took a report (leases renewed)
        self._soon = asyncio.Event()

    def flush_soon(self) -> None:
        """Flush now rather than at the next tick (coalescing what comes in the meantime)."""
        self._soon.set()

    def started(
        self, task_ids: list[str], sizes: list[int | None], *, transfer_id: str | None = None
    ) -> None:
        """Files of one transfer start; every report of them names ``transfer_id`` (the control
        plane credits a report only to the transfer holding the file's lease)."""
        now = time.monotonic()
        for task_id, size in zip(task_ids, sizes, strict=True):
            self._live[task_id] = _Live(0, size, now - self.keepalive_s, transfer_id)
            self._dirty.add(task_id)

    def progress(self, task_id: str, bytes_done: int, size: int) -> None:
        live = self._live.get(task_id)
        if live is None:
            return
        live.bytes_done, live.size = bytes_done, size
        self._dirty.add(task_id)

    def finished(self, result: FileResult) -> None:
        live = self._live.pop(result.key, None)
        self._dirty.discard(result.key)
        item = result_report(result)
        if live is not None and live.transfer_id is not None:
            item["transfer_id"] = live.transfer_id
        self._final[result.key] = item

    def stopped(self, transfer_id: str) -> None:
        """A transfer the control plane took back has stopped: say so soon (its files may be
        leased again as soon as the control plane knows)."""
        self._stopped.add(transfer_id)
        self.flush_soon()

    def _batch(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        batch = list(self._final.values())
        for task_id, live in self._live.items():
            age = now - live.sent_at
            due = age >= self.progress_s - _EARLY_S
            if (task_id in self._dirty and due) or age >= self.keepalive_s:
                live.sent_at = now
                self._dirty.discard(task_id)
                item: dict[str, Any] = {
                    "task_id": task_id,
                    "status": "executing",
                    "bytes_done": live.bytes_done,
                    "size": live.size,
                }
                if live.transfer_id is not None:
                    item["transfer_id"] = live.transfer_id
                batch.append(item)
        return batch

    async def flush(self) -> bool:
        """Send what is pending; False (results kept) if the control plane did not take it."""
        batch = self._batch()
        stopped = set(self._stopped)
        if not batch and not stopped:
            return True
        finals = {item["task_id"] for item in batch if item["status"] != "executing"}
        try:
            if stopped:
                answer = await self.sink.report(batch, stopped=stopped)
            else:
                answer = await self.sink.report(batch)
        except ReelsyncError as exc:
            _log.warning("could not report %d task(s): %s", len(batch), exc)
            return False
        self._stopped -= stopped
        if batch:
            self.renewed_at = time.monotonic()
        for task_id in finals:
            self._final.pop(task_id, None)
        for refused in (answer or {}).get("rejected") or ():
            _log.warning("the control plane refused the report of task %s: %s",
                         refused.get("task_id"), refused.get("error"))  # fmt: skip
        revoked = {str(t) for t in (answer or {}).get("revoked") or ()}
        if revoked:
            for task_id in revoked:  # no longer ours: stop reporting them
                self._live.pop(task_id, None)
                self._dirty.discard(task_id)
            if self.on_revoked is not None:
                self.on_revoked(revoked)
        return True

    def forget(self, task_ids: tuple[str, ...]) -> None:
        """Stop reporting ``task_ids`` (their transfer was taken back); results kept go out."""
        for task_id in task_ids:
            self._live.pop(task_id, None)
            self._dirty.discard(task_id)

    def transfer_ids(self) -> set[str]:
        """The transfers with a file still reported or a result not yet taken."""
        ids = {live.transfer_id for live in self._live.values() if live.transfer_id is not None}
        ids.update(
            str(item["transfer_id"]) for item in self._final.values() if "transfer_id" in item
        )
        return ids

    def is_live(self, task_id: str) -> bool:
        """Whether ``task_id`` started and has no final result yet."""
        return task_id in self._live

    @property
    def pending_results(self) -> int:
        return len(self._final)

    async def run(self) -> None:
        """Flush every ``interval_s``, or soon after :meth:`flush_soon`, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), self.interval_s)
                await asyncio.sleep(_COALESCE_S)
            self._soon.clear()
            if not await self.flush():
                await asyncio.sleep(min(5.0, self.interval_s * 4))


class TransferObserverFor:
    """The engine's TransferObserver for one transfer, feeding a Reporter."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        self.reporter.progress(key, bytes_done, size)

    def file_finished(self, result: FileResult) -> None:
        self.reporter.finished(result)
