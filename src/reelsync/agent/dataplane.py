"""The agent's data plane in worker processes: one engine per process, so an agent uses as many
cores as it has workers (``[transfer] workers``).

Rules:

- Each worker (agent/dataworker.py) is a whole :class:`~reelsync.engine.Engine`: it dials its
  own sessions, owns their TLS sockets and keeps them open for more work, as the agent's own
  engine does when it has no workers. Python runs one thread of a process at a time, so one
  engine tops out near one core; workers add cores.
- Assignments (the control plane's grants) go to the worker running the fewest, so the grants an
  agent runs at once (``max_transfers``) spread over the workers. A large grant (256 MiB or
  1,000 files and more) is split in parts of about equal size, one per worker, each its own
  session; a folder is never split (it is one task: one worker lists and sends it). The
  worker's progress and results come back as messages and are passed to the caller's observer;
  cancelling a call stops the worker's transfer and waits until it let go.
- This process owns the listening socket. For each peer's connection it peeks (never reads) the
  TLS ClientHello and hands the connection to a worker by the routing name the dialer put in it
  (``protocol.clienthello``): every stream of one session reaches the same worker, and sessions
  are dealt to the workers in turn. A dialer that sends no routing name (an older agent) always
  reaches worker 0. TLS, the ticket and the peer's certificate are checked in the worker, by
  the same gate as ever.
- Volumes, revoked peers and the bandwidth limit are sent to every worker when they change. The
  limit holds for the agent as a whole: each worker gets an equal share among the workers moving
  data (rebalanced every half second), so a lone transfer gets all of it.
- A worker that dies (killed, out of memory) fails only its transfers in flight, as retryable
  (the receiver keeps their verified chunks), and is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelsync.agent.scopes import ScopeBook
from reelsync.agent.workerlink import MessageLink, WorkerInit, send_connection
from reelsync.engine import (
    Assignment,
    Engine,
    EngineSettings,
    FileResult,
    Listener,
    NullObserver,
    TransferObserver,
    listen_socket,
)
from reelsync.errors import ConnectionLostError, ReelsyncError, error_from_code
from reelsync.fs import Volume, normalize_relpath
from reelsync.pki import client_ssl_context, server_ssl_context
from reelsync.protocol.clienthello import record_length, route_label

__all__ = ["WorkerPool", "agent_engine"]

_log = logging.getLogger("reelsync.agent")
_RESTART_S = 1.0  # a dead worker is started again after this
_STOP_S = 10.0  # a worker not gone this long after its link closed is killed
_ROUTES_KEPT_S = 120.0  # a session's streams all come up within a connect timeout or two
_UNKNOWN_SIZE = 1 << 20  # a file the control plane gave no size for counts as this much
_PER_FILE = 64 << 10  # what a file costs beside its bytes, in bytes' worth (for balancing parts)


@dataclass(eq=False)
class _Call:
    future: asyncio.Future[list[FileResult]]
    observer: TransferObserver


@dataclass(eq=False)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    link: MessageLink
    conns: socket.socket  # where its peers' connections are handed over
    calls: dict[int, _Call] = field(default_factory=dict)
    stats: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # sent, received, sessions,
    # peers' streams accepted, and refused
    moved: int = 0  # bytes at the last rebalance
    rate: float | None = None
    alive: bool = True
    reader: asyncio.Task[None] | None = None


class WorkerPool:
    """``count`` data-plane worker processes, with the calls of the engine the agent uses."""

    def __init__(
        self,
        count: int,
        init: Callable[[int], WorkerInit],
        scopes: ScopeBook,
        *,
        connect_timeout: float = 15.0,
        split_bytes: int = 256 << 20,
        split_files: int = 1000,
    ) -> None:
        self.count = count
        self.split_bytes = split_bytes
        self.split_files = split_files
        self._init = init
        self._scopes = scopes
        self._connect_timeout = connect_timeout
        self._workers: list[_Worker | None] = [None] * count
        self._ids = itertools.count(1)
        self._volumes: list[tuple[str, str]] = []
        self._revoked: frozenset[str] = frozenset()
        self._limit: float | None = None
        # what earlier incarnations did: sent, received, streams accepted, refused
        self._base = [(0, 0, 0, 0)] * count
        self._listeners: list[Listener] = []
        self._routes: dict[str, tuple[int, float]] = {}
        self._routes_lock = threading.Lock()
        self._next = itertools.count()
        self._closing = False
        self._chores: set[asyncio.Task[None]] = set()
        # peeking waits for the peer's first bytes: threads, as the engine's TLS handshakes
        self._threads = ThreadPoolExecutor(34, thread_name_prefix="reelsync-route")

    # -- the engine's calls ----------------------------------------------------------------------
    @property
    def open_sessions(self) -> int:
        return sum(w.stats[2] for w in self._live())

    @property
    def streams_accepted(self) -> int:
        """Peer connections the workers served (all incarnations)."""
        return sum(b[2] for b in self._base) + sum(w.stats[3] for w in self._live())

    @property
    def streams_refused(self) -> int:
        """Of those, refused (e.g. a joining stream that reached a worker without its session)."""
        return sum(b[3] for b in self._base) + sum(w.stats[4] for w in self._live())

    @property
    def bytes_moved(self) -> tuple[int, int]:
        sent = sum(b[0] for b in self._base) + sum(w.stats[0] for w in self._live())
        received = sum(b[1] for b in self._base) + sum(w.stats[1] for w in self._live())
        return sent, received

    @property
    def bandwidth_limit(self) -> float | None:
        return self._limit

    def set_bandwidth_limit(self, rate: float | None) -> None:
        self._limit = rate
        self._rebalance()

    def set_volumes(self, volumes: Mapping[str, Volume]) -> None:
        self._volumes = [(code, str(v.root)) for code, v in volumes.items()]
        for worker in self._live():
            self._post(worker, "volumes", self._volumes)

    def set_revoked(self, revoked: frozenset[str]) -> None:
        if revoked != self._revoked:
            self._revoked = revoked
            for worker in self._live():
                self._post(worker, "revoked", revoked)

    async def push(
        self, assignment: Assignment, observer: TransferObserver | None = None
    ) -> list[FileResult]:
        return await self._call("send", assignment, observer or NullObserver())

    async def pull(
        self, assignment: Assignment, observer: TransferObserver | None = None
    ) -> list[FileResult]:
        return await self._call("receive", assignment, observer or NullObserver())

    async def serve(self, host: str, port: int) -> Listener:
        """Listen for peers on ``host:port`` and hand each connection to its worker."""
        lsock = listen_socket(host, port)
        task = asyncio.ensure_future(self._accept_loop(lsock))
        listener = Listener(lsock, task, host, lsock.getsockname()[1])
        self._listeners.append(listener)
        return listener

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        for index in range(self.count):
            self._workers[index] = await self._spawn(index)
        _log.info("data plane: %d worker processes", self.count)

    async def aclose(self) -> None:
        self._closing = True
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        for chore in list(self._chores):
            chore.cancel()
        await asyncio.gather(*self._chores, return_exceptions=True)
        workers = self._live()
        for worker in workers:
            worker.link.close()  # the worker stops its transfers and sessions, then exits
        await asyncio.gather(*(self._reap(w) for w in workers))
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _reap(self, worker: _Worker) -> None:
        try:
            await asyncio.wait_for(worker.proc.wait(), _STOP_S)
        except TimeoutError:
            _log.warning("data-plane worker %d did not stop: killing it", worker.index)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            await worker.proc.wait()
        if worker.reader is not None:
            await asyncio.gather(worker.reader, return_exceptions=True)

    async def _spawn(self, index: int) -> _Worker:
        msg_here, msg_there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        conn_here, conn_there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "reelsync.agent.dataworker",
                str(msg_there.fileno()),
                str(conn_there.fileno()),
                pass_fds=(msg_there.fileno(), conn_there.fileno()),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            for s in (msg_here, msg_there, conn_here, conn_there):
                s.close()
            raise
        finally:
            msg_there.close()
            conn_there.close()
        link = await MessageLink.open(msg_here)
        worker = _Worker(index, proc, link, conn_here)
        await link.send("init", self._init(index))
        await link.send("volumes", self._volumes)
        await link.send("revoked", self._revoked)
        worker.reader = asyncio.create_task(self._read(worker), name=f"data-worker-{index}")
        self._workers[index] = worker
        self._rebalance()
        return worker

    def _live(self) -> list[_Worker]:
        return [w for w in self._workers if w is not None and w.alive]

    def _post(self, worker: _Worker, *message: Any) -> None:
        task = asyncio.ensure_future(worker.link.send(*message))
        task.add_done_callback(_quiet)

    # -- messages from a worker ------------------------------------------------------------------
    async def _read(self, worker: _Worker) -> None:
        while True:
            message = await worker.link.recv()
            if message is None:
                break
            try:
                self._dispatch(worker, message)
            except Exception:  # a bug here must not stop the worker's messages
                _log.exception("data-plane worker %d: bad message %r", worker.index, message[0])
        worker.alive = False
        sent, received, _sessions, accepted, refused = worker.stats
        base = self._base[worker.index]
        self._base[worker.index] = (
            base[0] + sent,
            base[1] + received,
            base[2] + accepted,
            base[3] + refused,
        )
        worker.conns.close()
        worker.link.close()
        code = await worker.proc.wait()
        lost = ConnectionLostError(
            f"the agent's data-plane worker {worker.index} stopped (exit code {code})"
        )
        for call in worker.calls.values():
            if not call.future.done():
                call.future.set_exception(lost)
        if self._closing:
            return
        _log.warning("%s: starting it again", lost.message)
        task = asyncio.ensure_future(self._restart(worker.index))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _restart(self, index: int) -> None:
        delay = _RESTART_S
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._spawn(index)
                return
            except (OSError, ReelsyncError) as exc:
                _log.warning("cannot start data-plane worker %d: %s", index, exc)
                delay = min(delay * 2, 30.0)

    def _dispatch(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "stats":
            sent, received, sessions, accepted, refused = message[1:6]
            worker.stats = (sent, received, sessions, accepted, refused)
            self._rebalance()
            return
        call = worker.calls.get(message[1])
        if call is None:
            return  # a call given up on (cancelled, its worker restarted)
        if kind == "events":
            for event in message[2]:
                if event[0] == "progress":
                    call.observer.file_progress(event[1], event[2], event[3])
                else:
                    call.observer.file_finished(event[1])
        elif kind == "result" and not call.future.done():
            call.future.set_result(message[2])
        elif kind == "error" and not call.future.done():
            _, _, code, text, _retryable = message
            call.future.set_exception(error_from_code(code, text, remote=False))

    def _rebalance(self) -> None:
        """Each worker's share of the agent's limit: equal among those moving data."""
        live = self._live()
        moving = []
        for worker in live:
            total = worker.stats[0] + worker.stats[1]
            if worker.calls or total != worker.moved:
                moving.append(worker)
            worker.moved = total
        share = None if self._limit is None else self._limit / max(1, len(moving))
        for worker in live:
            if worker.rate != share:
                worker.rate = share
                self._post(worker, "limit", share)

    # -- calls -----------------------------------------------------------------------------------
    def _split(self, assignment: Assignment) -> list[Assignment]:
        """The grant in parts of about equal size, one per worker, when it is large enough to
        keep several busy (each part is a session of its own in its own worker)."""
        files = assignment.files
        sizes = [s.size if s.size is not None and s.size >= 0 else _UNKNOWN_SIZE for s in files]
        count = min(len(self._live()), len(files))
        if count < 2 or (sum(sizes) < self.split_bytes and len(files) < self.split_files):
            return [assignment]
        loads = [0] * count
        parts: list[list[int]] = [[] for _ in range(count)]
        for i in sorted(range(len(files)), key=lambda i: -sizes[i]):  # largest first
            lightest = loads.index(min(loads))
            parts[lightest].append(i)
            loads[lightest] += sizes[i] + _PER_FILE
        return [
            dataclasses.replace(assignment, files=tuple(files[i] for i in sorted(part)))
            for part in parts
        ]

    async def _call(
        self, role: str, assignment: Assignment, observer: TransferObserver
    ) -> list[FileResult]:
        parts = self._split(assignment)
        if len(parts) == 1:
            return await self._call_one(role, assignment, observer)
        outcomes = await asyncio.gather(
            *(self._call_one(role, part, observer) for part in parts), return_exceptions=True
        )
        results: dict[str, FileResult] = {}
        for part, outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, ReelsyncError):  # that part's session (or worker) failed
                results.update((s.key, FileResult.failed(s.key, outcome)) for s in part.files)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.update((r.key, r) for r in outcome)
        return [results[s.key] for s in assignment.files]

    async def _call_one(
        self, role: str, assignment: Assignment, observer: TransferObserver
    ) -> list[FileResult]:
        live = self._live()
        if not live:
            raise ConnectionLostError("no data-plane worker is running (starting again)")
        worker = min(live, key=lambda w: (len(w.calls), w.index))
        number = next(self._ids)
        future: asyncio.Future[list[FileResult]] = asyncio.get_running_loop().create_future()
        worker.calls[number] = _Call(future, observer)
        self._rebalance()  # a worker with a call moves data: its share of the limit from now
        local = [s.src if role == "send" else s.dst for s in assignment.files]
        scopes = []
        for where in local:
            path = normalize_relpath(where.path)
            scopes.append((where.volume, path, self._scopes.held(where.volume, path)))
        try:
            await worker.link.send("run", number, role, assignment, scopes)
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if worker.alive:  # stop the worker's transfer and wait until it let go of its files
                with contextlib.suppress(ReelsyncError, TimeoutError, asyncio.CancelledError):
                    await worker.link.send("cancel", number)
                    await asyncio.wait_for(asyncio.shield(future), _STOP_S)
            raise
        finally:
            worker.calls.pop(number, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning

    # -- peers' connections ----------------------------------------------------------------------
    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            raw, _ = await loop.sock_accept(lsock)
            loop.run_in_executor(self._threads, self._route, raw).add_done_callback(_quiet)

    def _route(self, raw: socket.socket) -> None:
        """Thread: find the connection's routing name and hand it to its worker."""
        try:
            label = self._peek_label(raw)
            worker = self._worker_for(label)
            if worker is not None:
                send_connection(worker.conns, raw)
        except OSError as exc:
            _log.debug("a peer's connection could not be handed to a worker: %s", exc)
        finally:
            raw.close()  # the worker has its own copy

    def _peek_label(self, raw: socket.socket) -> str | None:
        raw.setblocking(True)
        wait = struct.pack("ll", int(self._connect_timeout), 0)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
        try:
            head = raw.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
            if len(head) < 5:
                return None
            size = record_length(head)
            if size is None:
                return None
            record = raw.recv(size, socket.MSG_PEEK | socket.MSG_WAITALL)
            return route_label(record)
        finally:  # the worker's TLS reads block without a kernel timeout
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))

    def _worker_for(self, label: str | None) -> _Worker | None:
        live = self._live()
        if not live:
            return None
        if label is None:  # an older dialer: all of its sessions' streams to one worker
            return live[0]
        now = time.monotonic()
        with self._routes_lock:
            if len(self._routes) > 4096:
                self._routes = {
                    k: v for k, v in self._routes.items() if now - v[1] < _ROUTES_KEPT_S
                }
            known = self._routes.get(label)
            index = known[0] if known is not None else next(self._next) % self.count
            self._routes[label] = (index, now)
        worker = self._workers[index]
        return worker if worker is not None and worker.alive else live[0]


def agent_engine(settings: EngineSettings, *, cert: Path, key: Path, ca: Path) -> Engine:
    """An engine with the agent's certificate for both ends of its sessions (the agent's own
    when it has no workers, else each worker's)."""
    return Engine(
        settings,
        client_ssl=client_ssl_context(ca, cert_file=cert, key_file=key, check_hostname=False),
        server_ssl=server_ssl_context(cert, key, ca),
    )


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
