"""The control plane's FileOperator: file operations relayed to the agent serving the volume.

Rules: an operation goes to an online agent serving the volume at the request's site (the main
site when none is named), one whose work long-poll is on this process first; the agent picks it
up on its next long-poll (woken at once) and answers through ``POST /api/v1/agent/fileop-result``.
An agent handed an operation that stops polling for ``_ALIVE_S`` (it died with its poll open, or
never polled) loses it: it goes to the next agent of the site, and around again; an answer from
any agent it was handed to counts, once. No agent online -> UnavailableError at once; no answer
within ``timeout_s`` -> UnavailableError; an error the agent reports is rebuilt as the same
reelsync error class. On PostgreSQL (where replicas run) every operation is also a row of the
``fileop`` mailbox (:mod:`reelsync.services.fileop_mailbox`): an agent long-polling another
process takes it and answers there, and this process reads the answer; a holder that took it
and is no longer online loses it. On SQLite (one process) the mailbox is memory only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool

from reelsync.db import Database
from reelsync.domain.fileops import FileRequest
from reelsync.errors import AgentOfflineError, ReelsyncError, UnavailableError, error_from_code
from reelsync.services import fileop_mailbox
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
        "scope": request.scope,
        "scope_to": request.scope_to,
        **({"paths": list(request.paths), "scopes": list(request.scopes)} if request.paths else {}),
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
        self.on_posted: Callable[[], None] | None = None  # wakes the other workers' long-polls

    @property
    def shared(self) -> bool:
        """Operations also go through the database (PostgreSQL: replicas may run)."""
        return not self._database_of().is_sqlite

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
            raise AgentOfflineError(
                f"no agent serves volume {request.volume_code!r} at {where} (none online), so "
                f"its files cannot be reached ({request.op.value} {request.path or '/'})",
                hint="start one: reelsync agent run --data-dir DIR",
            )
        op_id = secrets.token_hex(8)
        item = request_to_json(op_id, request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        handed: set[str] = set()
        self._waiting[op_id] = (handed, future)
        shared, db = self.shared, self._database_of()
        deadline = time.monotonic() + self.timeout_s
        holder, handed_at, taken = "", 0.0, False
        try:
            while True:
                if not holder or not self._alive(holder, handed_at, taken, candidates):
                    first = not holder
                    holder, handed_at = self._next(candidates, holder), time.monotonic()
                    self._hand(op_id, item, holder, handed)
                    if shared:
                        if first:
                            await run_in_threadpool(fileop_mailbox.post, db, op_id, holder, item)
                        else:
                            await run_in_threadpool(fileop_mailbox.reassign, db, op_id, holder)
                        if self.on_posted is not None and not self.polls_here(holder):
                            self.on_posted()  # it may poll another worker: wake it there
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
                if shared:
                    seen = await run_in_threadpool(fileop_mailbox.state, db, op_id)
                    if seen is not None and seen.answer is not None:
                        return _outcome(seen.answer)
                    taken = seen is not None and seen.taken
                if shared or not self._alive(holder, handed_at, taken, candidates):
                    candidates = await self._candidates(request) or candidates
        finally:
            self._waiting.pop(op_id, None)
            for server_id in handed:
                box = self._box(server_id)
                box.pending[:] = [p for p in box.pending if p["id"] != op_id]
            if shared:  # also when the caller gave up (cancelled): never leave the row behind
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(fileop_mailbox.remove, db, op_id)

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
        if not self.shared:  # else the agent takes it from the mailbox, wherever it polls
            box.pending.append(item)
        box.wake.set()

    def _alive(self, server_id: str, handed_at: float, taken: bool, online: list[str]) -> bool:
        """Whether ``server_id`` may still answer: handed the operation only just now; else, an
        agent polling here is alive while it keeps polling; one polling another process (through
        the mailbox) while it has taken the operation and is online."""
        now = time.monotonic()
        if now - handed_at < _ALIVE_S:
            return True
        seen = self._seen.get(server_id)
        if seen is not None and now - seen < _HERE_S:
            return now - seen < _ALIVE_S
        return taken and server_id in online

    def polls_here(self, server_id: str) -> bool:
        """``server_id``'s work long-poll ran on this process within the last ``_HERE_S``."""
        return time.monotonic() - self._seen.get(server_id, -_HERE_S) < _HERE_S

    def take(self, server_id: str) -> list[dict[str, Any]]:
        """Operations waiting for ``server_id`` in memory (handed out once); it polls here."""
        self._seen[server_id] = time.monotonic()
        box = self._box(server_id)
        out, box.pending[:] = list(box.pending), []
        box.wake.clear()
        return out

    async def collect(self, server_id: str) -> list[dict[str, Any]]:
        """Everything waiting for ``server_id``: in memory, and in the mailbox when shared."""
        out = self.take(server_id)
        if self.shared:
            out += await run_in_threadpool(fileop_mailbox.take, self._database_of(), server_id)
        return out

    async def give_back(self, server_id: str, operations: list[dict[str, Any]]) -> None:
        """Operations :meth:`collect` handed out that never reached the agent (it went away)."""
        if not operations:
            return
        if self.shared:
            ids = [str(op["id"]) for op in operations]
            await run_in_threadpool(fileop_mailbox.untake, self._database_of(), server_id, ids)
        else:
            box = self._box(server_id)
            box.pending[:0] = [op for op in operations if op["id"] in self._waiting]

    def wake_all(self) -> None:
        """End every agent's current :meth:`wait` (new work may be there for them)."""
        for box in self._boxes.values():
            box.wake.set()

    async def wait(self, server_id: str, timeout: float) -> bool:
        """Sleep until an operation arrives for ``server_id``, :meth:`wake_all` is called
        (True) or ``timeout`` passes (False)."""
        box = self._box(server_id)
        if box.pending:
            return True
        try:
            await asyncio.wait_for(box.wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def deliver(self, server_id: str, op_id: str, answer: dict[str, Any]) -> bool:
        """An agent's answer, to the waiter here or through the mailbox to another process."""
        if self.resolve(server_id, op_id, answer):
            return True
        if self.shared:
            return await run_in_threadpool(
                fileop_mailbox.answer, self._database_of(), op_id, server_id, answer
            )
        return False

    def resolve(self, server_id: str, op_id: str, answer: dict[str, Any]) -> bool:
        """Deliver an agent's answer ``{result}`` or ``{error: {code, message}}`` to a waiter in
        this process; False when nobody here waits for it (timed out, another process asked) or
        it came from an agent it was not handed to."""
        waiting = self._waiting.get(op_id)
        if waiting is None or server_id not in waiting[0] or waiting[1].done():
            return False
        future = waiting[1]
        try:
            future.set_result(_outcome(answer))
        except ReelsyncError as exc:
            future.set_exception(exc)
        return True


def _outcome(answer: dict[str, Any]) -> Any:
    """The result in an agent's answer, or its error raised as the reelsync error class."""
    error = answer.get("error")
    if isinstance(error, dict):
        raise error_from_code(
            str(error.get("code") or "error"),
            str(error.get("message") or "the agent failed the file operation"),
            remote=True,
        )
    return answer.get("result")
