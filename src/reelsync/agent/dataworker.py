"""A data-plane worker process of an agent (``python -m reelsync.agent.dataworker MSG_FD CONN_FD``).

Rules: started only by the agent (agent/dataplane.py) with the two descriptors of its socket
pairs (agent/workerlink.py). It builds its own :class:`~reelsync.engine.Engine` and
:class:`~reelsync.agent.gate.TicketGate` from the agent's key files, serves the volumes, revoked
peers and bandwidth share the agent sends it, runs the assignments the agent gives it (their
progress and results go back as messages) and serves the peers' connections the agent hands it.
It holds nothing of its own: it stops when the agent is gone (its message pair closes), and a
worker that dies costs only its transfers in flight, which the agent fails as retryable (the
receiver keeps their verified chunks). It never talks to the control plane.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from reelsync.agent.dataplane import agent_engine
from reelsync.agent.gate import TicketGate
from reelsync.agent.scopes import ScopeBook
from reelsync.agent.workerlink import MessageLink, WorkerInit, receive_connection
from reelsync.engine import Assignment, FileResult
from reelsync.errors import InternalError, ReelsyncError
from reelsync.fs import Volume
from reelsync.pki import TicketVerifier

__all__ = ["main"]

_log = logging.getLogger("reelsync.agent")
_STATS_S = 0.5


class _Forward:
    """The engine's observer for one call: its events go to the agent in one message per turn of
    the loop (a batch of small files finishes hundreds of files at once)."""

    def __init__(self, worker: _Worker, call: int) -> None:
        self.worker = worker
        self.call = call
        self.events: list[tuple[Any, ...]] = []

    def file_progress(self, key: str, bytes_done: int, size: int) -> None:
        self._add(("progress", key, bytes_done, size))

    def file_finished(self, result: FileResult) -> None:
        self._add(("finished", result))

    def _add(self, event: tuple[Any, ...]) -> None:
        if not self.events:
            asyncio.get_running_loop().call_soon(self.flush)
        self.events.append(event)

    def flush(self) -> None:
        if self.events:
            events, self.events = self.events, []
            self.worker.post("events", self.call, events)


class _Worker:
    def __init__(self, link: MessageLink, init: WorkerInit) -> None:
        self.link = link
        self.init = init
        self.scopes = ScopeBook()
        self.volumes: dict[str, Volume] = {}
        self.engine = agent_engine(init.engine, cert=init.cert, key=init.key, ca=init.ca)
        self.gate = TicketGate(
            init.agent_id,
            TicketVerifier.from_file(init.ticket_key),
            lambda: self.volumes,
            workspace=init.workspace or None,
            scopes=self.scopes,
        )
        self.calls: dict[int, asyncio.Task[None]] = {}
        self._outbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    def post(self, *message: Any) -> None:
        self._outbox.put_nowait(message)

    async def _sender(self) -> None:
        while True:
            message = await self._outbox.get()
            await self.link.send(*message)

    async def _stats(self) -> None:
        while True:
            sent, received = self.engine.bytes_moved
            engine = self.engine
            self.post("stats", sent, received, engine.open_sessions, engine.streams_accepted,
                      engine.streams_refused)  # fmt: skip
            await asyncio.sleep(_STATS_S)

    def _set_volumes(self, listed: list[tuple[str, str]]) -> None:
        volumes: dict[str, Volume] = {}
        for code, root in listed:
            current = self.volumes.get(code)
            if current is not None and str(current.root) == root:
                volumes[code] = current
                continue
            try:
                volume = Volume(code, Path(root))
            except ReelsyncError as exc:  # the agent serves it, so it was there a moment ago
                _log.warning("worker %d: not serving volume %s: %s", self.init.index, code, exc)
                continue
            volume.confine = self.scopes.confine(volume)
            volumes[code] = volume
        self.volumes = volumes
        self.engine.set_volumes(volumes)

    async def _run(self, call: int, role: str, assignment: Assignment, scopes: Any) -> None:
        for code, path, held in scopes:
            for scope, expires_at in held.items():
                self.scopes.add(code, path, scope, expires_at)
        forward = _Forward(self, call)
        try:
            run = self.engine.push if role == "send" else self.engine.pull
            results = await run(assignment, forward)
        except asyncio.CancelledError:
            forward.flush()
            self.post("error", call, "cancelled", "stopped by the agent", True)
            raise
        except ReelsyncError as exc:
            forward.flush()
            self.post("error", call, exc.code, exc.message, exc.retryable)
            return
        except Exception as exc:  # a bug must not kill the worker: the agent fails the files
            _log.exception(
                "worker %d: transfer %s crashed", self.init.index, assignment.transfer_id
            )
            forward.flush()
            err = InternalError(f"the data-plane worker failed: {exc}")
            self.post("error", call, err.code, err.message, False)
            return
        finally:
            self.calls.pop(call, None)
        forward.flush()
        self.post("result", call, results)

    def _adopt(self, conn: socket.socket) -> None:
        try:
            self.engine.adopt(conn, self.gate)
        except ReelsyncError as exc:
            _log.warning("worker %d: a peer's connection was refused: %s", self.init.index, exc)

    def _connections(self, link: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Thread: the connections the agent hands over, each to the engine on the loop."""
        while True:
            conn = receive_connection(link)
            if conn is None:
                return
            try:
                loop.call_soon_threadsafe(self._adopt, conn)
            except RuntimeError:  # the loop is closed: the worker is stopping
                conn.close()
                return

    async def serve(self, conn_link: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=self._connections, args=(conn_link, loop), name="reelsync-conns", daemon=True
        ).start()
        chores = [asyncio.create_task(self._sender()), asyncio.create_task(self._stats())]
        try:
            while True:
                message = await self.link.recv()
                if message is None:
                    return  # the agent is gone or stopping
                self._dispatch(message)
        finally:
            for task in self.calls.values():
                task.cancel()
            await asyncio.gather(*self.calls.values(), return_exceptions=True)
            await self.engine.aclose()
            for chore in chores:
                chore.cancel()
            await asyncio.gather(*chores, return_exceptions=True)

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "run":
            _, call, role, assignment, scopes = message
            self.calls[call] = asyncio.create_task(self._run(call, role, assignment, scopes))
        elif kind == "cancel":
            task = self.calls.get(message[1])
            if task is not None:
                task.cancel()
        elif kind == "volumes":
            self._set_volumes(message[1])
        elif kind == "revoked":
            self.gate.revoked = frozenset(message[1])
        elif kind == "limit":
            self.engine.set_bandwidth_limit(message[1])


async def _main(msg_fd: int, conn_fd: int) -> None:
    link = await MessageLink.open(socket.socket(fileno=msg_fd))
    first = await link.recv()
    if first is None or first[0] != "init" or not isinstance(first[1], WorkerInit):
        return
    init: WorkerInit = first[1]
    logging.basicConfig(
        level=init.log_level.upper(),
        format=f"%(asctime)s %(levelname)-7s %(name)s[w{init.index}]: %(message)s",
    )
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)  # as the agent (cli/agent.py)
    worker = _Worker(link, init)
    await worker.serve(socket.socket(fileno=conn_fd))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(a.isdigit() for a in argv):
        print("reelsync.agent.dataworker is started by `reelsync agent run`", file=sys.stderr)
        return 64
    # the agent stops its workers (it closes their links once its transfers have stopped); a
    # Ctrl-C or SIGTERM sent to the whole process group must not kill them under it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_main(int(argv[0]), int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
