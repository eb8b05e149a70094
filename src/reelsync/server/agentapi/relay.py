"""The control plane's FileOperator: file operations relayed to the agent serving the volume.

Rules: an operation goes to an online agent serving the volume at the request's site (the main
site when none is named), one whose work long-poll is on this process first; the agent picks it
up on its next long-poll (woken at once) and answers through ``POST /api/v1/agent/fileop-result``.
An agent handed an operation that stops polling for ``_ALIVE_S`` (it died with its poll open, or
never polled here) loses it: it goes to the next agent of the site, and around again; an answer
from any agent it was handed to counts, once. No agent online -> UnavailableError at once; no
answer within ``timeout_s`` -> UnavailableError; an error the agent reports is rebuilt as the same
reelsync error class. State is in memory: one control plane process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from reelsync.db import Database
from reelsync.domain.fileops import FileRequest
from reelsync.errors import UnavailableError, error_from_code
from reelsync.services.agents import agents_serving

__all__ = ["FileOpRelay", "request_to_json"]

_HERE_S = 10.0  # an agent whose long-poll ran on this process this recently is polling here
_ALIVE_S = 2.0  # an agent holding an operation that has not polled for this long is re-handed it
_CHECK_S = 0.5


def request_to_json(op_id: str, request: FileRequest) -> dict[str, Any]:
    """The wire form an agent receives in its work answer (``fileops``)."""
    return {
        "id": op_id,
        "op": request.op.value,
        "volume": request.volume_code,
        "path": request.path,
        "path_to": request.path_to,
        "recursive": request.recursive,
        "maxdepth": request.maxdepth,
        "getsize": request.getsize,
        "files_only": request.files_only,
        "directories_only": request.directories_only,
        "include": list(request.include),
        "exclude": list(request.exclude),
        "force": request.force,
    }


@dataclass(eq=False)
class _Mailbox:
    pending: list[dict[str, Any]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class FileOpRelay:
    """Implements :class:`reelsync.domain.fileops.FileOperator` over the agents' long-poll."""

    def __init__(self, database_of: Callable[[], Database], *, timeout_s: float = 30.0) -> None:
        self._database_of = database_of
        self.timeout_s = timeout_s
        self._boxes: dict[str, _Mailbox] = {}
        self._waiting: dict[str, tuple[set[str], asyncio.Future[Any]]] = {}
        self._seen: dict[str, float] = {}

    def _box(self, server_id: str) -> _Mailbox:
        box = self._boxes.get(server_id)
        if box is None:
            box = self._boxes[server_id] = _Mailbox()
        return box

    async def _candidates(self, request: FileRequest) -> list[str]:
        """Online agents able to serve ``request``, those polling here first."""
        agents = await run_in_threadpool(
            agents_serving, self._database_of(), request.volume_id, site_code=request.site_code
        )
        ids = [a.id for a in agents]
        return [i for i in ids if self.polls_here(i)] + [i for i in ids if not self.polls_here(i)]

    async def run(self, request: FileRequest) -> Any:
        where = f"site {request.site_code}" if request.site_code else "the main site"
        candidates = await self._candidates(request)
        if not candidates:
            raise UnavailableError(
                f"no agent serves volume {request.volume_code!r} at {where} (none online), so "
                f"its files cannot be reached ({request.op.value} {request.path or '/'})",
                hint="start one: reelsync agent run --data-dir DIR",
            )
        op_id = secrets.token_hex(8)
        item = request_to_json(op_id, request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        handed: set[str] = set()
        self._waiting[op_id] = (handed, future)
        deadline = time.monotonic() + self.timeout_s
        holder, handed_at = "", 0.0
        try:
            while True:
                if not holder or not self._alive(holder, handed_at):
                    holder, handed_at = self._next(candidates, holder), time.monotonic()
                    self._hand(op_id, item, holder, handed)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UnavailableError(
                        f"the agent at {where} did not answer {request.op.value} "
                        f"{request.volume_code}:{request.path or '/'} within "
                        f"{self.timeout_s:g} s"
                    )
                done, _ = await asyncio.wait({future}, timeout=min(_CHECK_S, remaining))
                if done:
                    return future.result()
                if not self._alive(holder, handed_at):
                    candidates = await self._candidates(request) or candidates
        finally:
            self._waiting.pop(op_id, None)
            for server_id in handed:
                box = self._box(server_id)
                box.pending[:] = [p for p in box.pending if p["id"] != op_id]

    def _next(self, candidates: list[str], holder: str) -> str:
        """The agent after ``holder`` in ``candidates`` (the first when none or not listed)."""
        if holder in candidates:
            return candidates[(candidates.index(holder) + 1) % len(candidates)]
        return candidates[0]

    def _hand(self, op_id: str, item: dict[str, Any], server_id: str, handed: set[str]) -> None:
        for other in handed:
            box = self._box(other)
            box.pending[:] = [p for p in box.pending if p["id"] != op_id]
        handed.add(server_id)
        box = self._box(server_id)
        box.pending.append(item)
        box.wake.set()

    def _alive(self, server_id: str, handed_at: float) -> bool:
        """``server_id`` polls here now, or was handed the operation only just now."""
        now = time.monotonic()
        return now - max(handed_at, self._seen.get(server_id, -_ALIVE_S)) < _ALIVE_S

    def polls_here(self, server_id: str) -> bool:
        """``server_id``'s work long-poll ran on this process within the last ``_HERE_S``."""
        return time.monotonic() - self._seen.get(server_id, -_HERE_S) < _HERE_S

    def take(self, server_id: str) -> list[dict[str, Any]]:
        """Operations waiting for ``server_id`` (handed out once); the agent polls here."""
        self._seen[server_id] = time.monotonic()
        box = self._box(server_id)
        out, box.pending[:] = list(box.pending), []
        box.wake.clear()
        return out

    def give_back(self, server_id: str, operations: list[dict[str, Any]]) -> None:
        """Operations :meth:`take` handed out that never reached the agent (it went away)."""
        if operations:
            box = self._box(server_id)
            box.pending[:0] = [op for op in operations if op["id"] in self._waiting]

    def wake_all(self) -> None:
        """End every agent's current :meth:`wait` (new work may be there for them)."""
        for box in self._boxes.values():
            box.wake.set()

    async def wait(self, server_id: str, timeout: float) -> None:
        """Sleep until an operation arrives for ``server_id``, :meth:`wake_all` is called or
        ``timeout`` passes."""
        box = self._box(server_id)
        if box.pending:
            return
        try:
            await asyncio.wait_for(box.wake.wait(), timeout)
        except TimeoutError:
            return

    def resolve(self, server_id: str, op_id: str, answer: dict[str, Any]) -> bool:
        """Deliver an agent's answer ``{result}`` or ``{error: {code, message}}``; False when
        nobody waits for it any more (timed out) or it came from another agent."""
        waiting = self._waiting.get(op_id)
        if waiting is None or server_id not in waiting[0] or waiting[1].done():
            return False
        future = waiting[1]
        error = answer.get("error")
        if isinstance(error, dict):
            future.set_exception(
                error_from_code(
                    str(error.get("code") or "error"),
                    str(error.get("message") or "the agent failed the file operation"),
                    remote=True,
                )
            )
        else:
            future.set_result(answer.get("result"))
        return True
